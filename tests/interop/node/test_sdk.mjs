// The official Lettermint Node.js SDK (`lettermint` on npm) against a running api-server.
//
// Started by tests/interop/run.sh, which exports:
// - LETTERMINT_BASE_URL: the server's origin, http://host:port. `/v1` is added here: the
//   SDK's `baseUrl` includes the version prefix (default https://api.lettermint.co/v1) and
//   it resolves `send`, `ping`, `projects`... relative to it.
// - LETTERMINT_PROJECT_TOKEN: a project token (lm_...).
// - LETTERMINT_TEAM_TOKEN: a team token (lm_team_...).

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';

import { HttpRequestError, Lettermint, ValidationError } from 'lettermint';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PAGE_KEYS = ['data', 'path', 'per_page', 'next_cursor', 'next_page_url', 'prev_cursor', 'prev_page_url'];
const TIMEOUT_MS = 15000;

function env(name) {
  const value = (process.env[name] ?? '').trim();
  if (!value) {
    throw new Error(`${name} is not set; start the tests with tests/interop/run.sh`);
  }
  return value;
}

function apiBase() {
  const origin = env('LETTERMINT_BASE_URL').replace(/\/+$/, '');
  return origin.endsWith('/v1') ? origin : `${origin}/v1`;
}

const options = () => ({ baseUrl: apiBase(), timeout: TIMEOUT_MS });
const projectToken = () => env('LETTERMINT_PROJECT_TOKEN');
const teamToken = () => env('LETTERMINT_TEAM_TOKEN');
// The email endpoint is a stateful builder: use a fresh one for every email.
const email = (token = projectToken()) => Lettermint.email(token, options());
const api = (token = teamToken()) => Lettermint.api(token, options());
const unique = (prefix) => `${prefix}-${randomUUID().slice(0, 12)}`;

function message(overrides = {}) {
  return {
    from: 'Interop Node <sender@example.com>',
    to: ['recipient@example.com'],
    subject: 'Interop test from the Node.js SDK',
    text: 'Hello from the Node.js SDK.',
    ...overrides,
  };
}

function compose(token, overrides = {}) {
  const m = message(overrides);
  return email(token).from(m.from).to(...m.to).subject(m.subject).text(m.text);
}

function assertPending(result) {
  assert.equal(typeof result, 'object');
  assert.equal(result.status, 'pending', JSON.stringify(result));
  assert.match(result.message_id, UUID);
  // A live send answers exactly these two keys.
  assert.deepEqual(Object.keys(result).sort(), ['message_id', 'status']);
  return result.message_id;
}

function fieldErrors(errors, field) {
  assert.equal(typeof errors, 'object', JSON.stringify(errors));
  return Object.keys(errors).filter(
    (key) => key === field || key.startsWith(`${field}.`) || key.startsWith(`${field}[`),
  );
}

async function assertStatus(promise, status) {
  const error = await promise.then(
    (value) => assert.fail(`expected HTTP ${status}, got ${JSON.stringify(value)}`),
    (e) => e,
  );
  assert.ok(error instanceof HttpRequestError, `expected HttpRequestError, got ${error}`);
  assert.equal(error.statusCode, status, JSON.stringify(error.responseBody));
  return error;
}

// --- Sending API ---------------------------------------------------------------------------

test('tokens are of the expected kinds', () => {
  assert.match(projectToken(), /^lm_[A-Za-z0-9]+$/);
  assert.ok(!projectToken().startsWith('lm_team_'));
  assert.match(teamToken(), /^lm_team_[A-Za-z0-9]+$/);
});

test('send one email', async () => {
  assertPending(await compose().send());
});

test('send with every common field', async () => {
  const result = await email()
    .from('Interop Node <sender@example.com>')
    .to('one@example.com', 'two@example.com')
    .cc('cc@example.com')
    .bcc('bcc@example.com')
    .replyTo('reply@example.com')
    .subject('Every field')
    .html('<p>Hello <b>there</b></p>')
    .text('Hello there')
    .headers({ 'X-Interop': 'node' })
    .metadata({ order_id: '1234' })
    .tag('interop test')
    .tags([
      { name: 'campaign', value: 'welcome' },
      { name: 'sdk', value: 'node' },
    ])
    .attach('hello.txt', Buffer.from('Hello, attachment').toString('base64'), undefined, 'text/plain')
    .attach('logo.png', Buffer.from('\x89PNG\r\n').toString('base64'), 'logo', 'image/png')
    .send();
  assertPending(result);
});

test('the legacy constructor sends too', async () => {
  const client = new Lettermint({ apiToken: projectToken(), ...options() });
  const m = message({ subject: 'Legacy constructor' });
  assertPending(await client.email.from(m.from).to(...m.to).subject(m.subject).text(m.text).send());
});

test('send a batch of two', async () => {
  const results = await email().sendBatch([
    message({ to: ['first@example.com'], subject: 'Batch 1' }),
    message({ to: ['second@example.com'], subject: 'Batch 2' }),
  ]);
  assert.ok(Array.isArray(results), JSON.stringify(results));
  assert.equal(results.length, 2);
  const ids = results.map(assertPending);
  assert.notEqual(ids[0], ids[1]);
});

test('a replayed batch keeps its order', async () => {
  const key = unique('node-batch');
  const batch = [
    message({ to: ['a@example.com'], subject: 'Ordered 1' }),
    message({ to: ['b@example.com'], subject: 'Ordered 2' }),
  ];
  const first = await email().idempotencyKey(key).sendBatch(batch);
  const again = await email().idempotencyKey(key).sendBatch(batch);
  assert.deepEqual(
    again.map((r) => r.message_id),
    first.map((r) => r.message_id),
  );
});

test('ping with either token', async () => {
  assert.equal(await email().ping(), 'pong');
  assert.equal(await api().ping(), 'pong');
});

test('an idempotent send is replayed', async () => {
  const key = unique('node-idem');
  const first = await compose(undefined, { subject: 'Idempotent send' }).idempotencyKey(key).send();
  const firstId = assertPending(first);
  const replay = await compose(undefined, { subject: 'Idempotent send' }).idempotencyKey(key).send();
  assert.equal(replay.message_id, firstId);
  assert.deepEqual(replay, first);
  const other = await compose(undefined, { subject: 'Idempotent send' })
    .idempotencyKey(unique('node-idem'))
    .send();
  assert.notEqual(assertPending(other), firstId);
});

test('an idempotency key reused with another body conflicts', async () => {
  const key = unique('node-conflict');
  assertPending(await compose(undefined, { subject: 'Original' }).idempotencyKey(key).send());
  const error = await assertStatus(
    compose(undefined, { subject: 'Changed' }).idempotencyKey(key).send(),
    409,
  );
  assert.ok(!(error instanceof ValidationError));
  assert.equal(typeof error.responseBody?.message, 'string');
});

test('an invalid from address is a ValidationError', async () => {
  const error = await compose(undefined, { from: 'not an email address' }).send().then(
    () => assert.fail('the send was accepted'),
    (e) => e,
  );
  assert.ok(error instanceof ValidationError, `expected ValidationError, got ${error}`);
  assert.equal(error.statusCode, 422);
  // The SDK reads `error` from the body as the error type; the 422 body must keep it a string
  // (or leave it out), otherwise the message reads "Validation error: [object Object]".
  assert.equal(typeof error.errorType, 'string');
  assert.equal(typeof error.responseBody.message, 'string');
  assert.ok(fieldErrors(error.responseBody.errors, 'from').length > 0, JSON.stringify(error.responseBody));
});

test('a send without recipients is a ValidationError', async () => {
  // The builder starts from { from: '', to: [], subject: '' }, so this sends `to: []`.
  const m = message();
  const error = await email().from(m.from).subject(m.subject).text(m.text).send().then(
    () => assert.fail('the send was accepted'),
    (e) => e,
  );
  assert.ok(error instanceof ValidationError, `expected ValidationError, got ${error}`);
  assert.ok(fieldErrors(error.responseBody.errors, 'to').length > 0, JSON.stringify(error.responseBody));
});

test('an unknown token is unauthenticated', async () => {
  const error = await assertStatus(compose(`lm_${'x'.repeat(32)}`).send(), 401);
  assert.ok(!(error instanceof ValidationError));
});

test('tokens do not cross surfaces', async () => {
  const send = await compose(teamToken()).send().catch((e) => e);
  assert.ok(send instanceof HttpRequestError, `team token sent mail: ${JSON.stringify(send)}`);
  assert.ok([401, 403].includes(send.statusCode), String(send.statusCode));
  const list = await api(projectToken()).projects.list().catch((e) => e);
  assert.ok(list instanceof HttpRequestError, `project token listed projects: ${JSON.stringify(list)}`);
  assert.ok([401, 403].includes(list.statusCode), String(list.statusCode));
});

// --- Team API ------------------------------------------------------------------------------

test('list projects', async () => {
  const page = await api().projects.list();
  for (const key of PAGE_KEYS) {
    assert.ok(key in page, `missing ${key} in ${JSON.stringify(page)}`);
  }
  assert.ok(Array.isArray(page.data) && page.data.length > 0);
  for (const project of page.data) {
    assert.match(project.id, UUID);
    assert.equal(typeof project.name, 'string');
  }
});

test('create a project and send with its token', async () => {
  const name = unique('Interop Node');
  const created = await api().projects.create({ name });
  assert.equal(typeof created.message, 'string');
  assert.equal(created.data.name, name);
  assert.match(created.data.id, UUID);
  assert.match(created.api_token, /^lm_[A-Za-z0-9]+$/);
  assert.ok(!created.api_token.startsWith('lm_team_'));

  const shown = await api().projects.retrieve(created.data.id);
  assert.equal(shown.name, name);

  assertPending(await compose(created.api_token, { subject: 'From a new project' }).send());
});

test('list pages follow next_cursor', async () => {
  const createdIds = [];
  for (let i = 0; i < 2; i += 1) {
    createdIds.push((await api().projects.create({ name: unique('Interop Node page') })).data.id);
  }
  const seen = [];
  let cursor = null;
  for (let pages = 0; pages < 1000; pages += 1) {
    const params = { 'page[size]': '1' };
    if (cursor) params['page[cursor]'] = cursor;
    const page = await api().projects.list(params);
    assert.ok(page.data.length <= 1);
    seen.push(...page.data.map((p) => p.id));
    cursor = page.next_cursor;
    if (cursor === null) break;
    assert.equal(typeof cursor, 'string');
  }
  assert.equal(cursor, null, 'the last page must have next_cursor: null');
  assert.equal(new Set(seen).size, seen.length, 'a project was listed twice');
  for (const id of createdIds) assert.ok(seen.includes(id), `${id} was not listed`);
  assert.ok(seen.length >= 3);
});

test('a project without a name is a ValidationError', async () => {
  const error = await api().projects.create({ name: '' }).then(
    () => assert.fail('the project was created'),
    (e) => e,
  );
  assert.ok(error instanceof ValidationError, `expected ValidationError, got ${error}`);
  assert.ok(fieldErrors(error.responseBody.errors, 'name').length > 0, JSON.stringify(error.responseBody));
});

test('rotating the token replaces the old value', async () => {
  // The SDK posts this without a body but with Content-Type: application/json.
  const created = await api().projects.create({ name: unique('Interop Node rotate') });
  const rotated = await api().projects.rotateToken(created.data.id);
  assert.equal(typeof rotated.message, 'string');
  assert.equal(rotated.data.id, created.data.id);
  assert.match(rotated.new_token, /^lm_[A-Za-z0-9]+$/);
  assert.notEqual(rotated.new_token, created.api_token);

  await assertStatus(compose(created.api_token).send(), 401);
  assertPending(await compose(rotated.new_token, { subject: 'After rotation' }).send());
});
