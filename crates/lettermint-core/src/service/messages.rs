use std::sync::Arc;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::id::{MessageId, ProjectId};
use crate::message::{
    IDEMPOTENCY_TTL, IdempotencyRecord, Message, MessageStatus, Submission, SubmissionOutcome,
};
use crate::model::Route;
use crate::page::{MessageSortKey, Page, PageRequest};
use crate::repo::{MessageRepository, RouteRepository};

/// Messages: route resolution and durable, revocation-ordered acceptance.
#[derive(Debug, Clone)]
pub struct MessageService {
    routes: Arc<dyn RouteRepository>,
    messages: Arc<dyn MessageRepository>,
    clock: Arc<dyn Clock>,
}

impl MessageService {
    /// Wires the service.
    pub fn new(
        routes: Arc<dyn RouteRepository>,
        messages: Arc<dyn MessageRepository>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            routes,
            messages,
            clock,
        }
    }

    /// The route a send goes through: the one with `slug`, or the project's default route.
    /// An unknown slug is a validation error on `route`.
    pub async fn resolve_route(&self, project: ProjectId, slug: Option<&str>) -> Result<Route> {
        match slug {
            Some(slug) => self
                .routes
                .get_route_by_slug(project, slug)
                .await?
                .ok_or_else(|| {
                    Error::invalid(
                        "route",
                        format!("The route `{slug}` does not exist in this project."),
                    )
                }),
            None => self
                .routes
                .get_default_route(project)
                .await?
                .ok_or(Error::not_found("route")),
        }
    }

    /// Commits submissions together (group commit); see [`MessageRepository::enqueue`].
    /// A submission whose messages belong to another project than its token is refused whole
    /// before anything is written.
    pub async fn enqueue(&self, submissions: &[Submission]) -> Result<Vec<SubmissionOutcome>> {
        for submission in submissions {
            if submission.messages.is_empty() {
                return Err(Error::invalid(
                    "messages",
                    "A submission needs at least one message.",
                ));
            }
            if submission
                .messages
                .iter()
                .any(|m| m.token_id != submission.credential.token_id)
            {
                return Err(Error::invalid(
                    "messages",
                    "Every message of a submission must name the submitting token.",
                ));
            }
        }
        self.messages.enqueue(submissions, self.clock.now()).await
    }

    /// The remembered response for `key` in `project`, if the key was used in the last
    /// [`IDEMPOTENCY_TTL`].
    pub async fn idempotency_record(
        &self,
        project: ProjectId,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>> {
        self.messages
            .get_idempotency_record(project, key, self.clock.now() - IDEMPOTENCY_TTL)
            .await
    }

    /// Deletes idempotency records past [`IDEMPOTENCY_TTL`]; how many.
    pub async fn prune_idempotency_records(&self) -> Result<u64> {
        self.messages
            .prune_idempotency_records(self.clock.now() - IDEMPOTENCY_TTL)
            .await
    }

    /// A page of a project's messages (all, or those with `status`).
    pub async fn list(
        &self,
        project: ProjectId,
        status: Option<MessageStatus>,
        page: PageRequest<MessageSortKey>,
    ) -> Result<Page<Message>> {
        let rows = self
            .messages
            .list_messages(project, status, page.keyset())
            .await?;
        Ok(page.page(rows, |m| m.id.as_uuid()))
    }

    /// A project's message.
    pub async fn get(&self, project: ProjectId, id: MessageId) -> Result<Message> {
        self.messages
            .get_message(project, id)
            .await?
            .ok_or(Error::not_found("message"))
    }
}
