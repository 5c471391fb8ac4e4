//! `cargo xtask fuzz <target>`: a small fuzzer that runs on stable Rust.
//!
//! cargo-fuzz and libFuzzer need nightly compiler flags; this runner needs nothing but the
//! workspace. It is not coverage-guided: it is *behaviour*-guided. Each target turns an input
//! into an outcome signature (which error, which reply codes); an input whose signature was not
//! seen before joins the in-memory corpus and is mutated further. Inputs start from the seed
//! corpus in `fuzz/corpus/<target>/` and are mutated with bit flips, byte edits, splices and a
//! per-target dictionary (CR, LF, NUL, SMTP verbs, JSON field names …), from a seeded generator,
//! until the time budget is spent. A target fails by panicking (caught with `catch_unwind`) or
//! by returning an error naming a broken invariant; the input is then written to
//! `target/fuzz/crashes/<target>/` and printed, and the run fails. The same `--seed` replays the
//! same inputs.

mod send;
mod smtp;
mod token;

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// What a target says about one input.
pub type Outcome = Result<u64, String>;

/// One fuzz target: the code under test behind a function from bytes to an outcome.
pub trait Target {
    /// Name, and the corpus directory under `fuzz/corpus/`.
    fn name(&self) -> &'static str;
    /// Fragments worth inserting into inputs.
    fn dictionary(&self) -> &'static [&'static [u8]];
    /// Runs one input: the signature of what happened, or the invariant it broke.
    fn run(&mut self, input: &[u8]) -> Outcome;
}

/// The names of the targets, for `cargo xtask fuzz all`.
pub const TARGETS: [&str; 3] = ["token", "smtp", "send"];

fn target(name: &str) -> Result<Box<dyn Target>> {
    Ok(match name {
        "token" => Box::new(token::TokenTarget),
        "smtp" => Box::new(smtp::SmtpTarget::new()?),
        "send" => Box::new(send::SendTarget),
        other => bail!(
            "unknown fuzz target `{other}` (expected one of {}, or all)",
            TARGETS.join(", ")
        ),
    })
}

/// Runs `names` (or every target for `all`) for `seconds` each.
pub fn run(names: &[String], seconds: u64, seed: Option<u64>) -> Result<()> {
    let names: Vec<String> = if names.iter().any(|n| n == "all") || names.is_empty() {
        TARGETS.iter().map(|s| (*s).to_owned()).collect()
    } else {
        names.to_vec()
    };
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let root = workspace_root();
    // Silence the default panic message: a caught panic is reported with its input.
    let last_panic = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    {
        let last_panic = last_panic.clone();
        std::panic::set_hook(Box::new(move |info| {
            let text = format!("{info}\n{}", std::backtrace::Backtrace::force_capture());
            *last_panic.lock().unwrap_or_else(|e| e.into_inner()) = text;
        }));
    }
    let mut failed = Vec::new();
    for name in &names {
        let mut target = target(name)?;
        let corpus = load_corpus(&root.join("fuzz/corpus").join(name))?;
        let report = fuzz(
            target.as_mut(),
            corpus,
            Duration::from_secs(seconds),
            seed,
            &last_panic,
        );
        match report.failure {
            None => println!(
                "fuzz {name}: {} inputs in {:.1} s, {} behaviours, corpus {} (seed {seed}): ok",
                report.runs,
                report.elapsed.as_secs_f64(),
                report.signatures,
                report.corpus
            ),
            Some((input, why)) => {
                let dir = root.join("target/fuzz/crashes").join(name);
                std::fs::create_dir_all(&dir)?;
                let file = dir.join(format!("{:016x}", hash(&input)));
                std::fs::write(&file, &input)?;
                eprintln!(
                    "fuzz {name}: FAILED after {} inputs (seed {seed})\n  input: {}\n  saved: {}\n  {why}",
                    report.runs,
                    escape(&input),
                    file.display()
                );
                failed.push(name.clone());
            }
        }
    }
    if !failed.is_empty() {
        bail!("fuzz targets failed: {}", failed.join(", "));
    }
    Ok(())
}

/// Replays saved inputs (crash files or corpus entries) through a target.
pub fn replay(name: &str, files: &[PathBuf]) -> Result<()> {
    let mut target = target(name)?;
    let mut failed = 0;
    for file in files {
        let input = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| target.run(&input)));
        match outcome {
            Ok(Ok(signature)) => println!("{}: ok ({signature:016x})", file.display()),
            Ok(Err(why)) => {
                failed += 1;
                println!("{}: FAILED: {why}", file.display());
            }
            Err(_) => {
                failed += 1;
                println!("{}: PANICKED", file.display());
            }
        }
    }
    if failed > 0 {
        bail!("{failed} inputs failed");
    }
    Ok(())
}

struct Report {
    runs: u64,
    elapsed: Duration,
    signatures: usize,
    corpus: usize,
    failure: Option<(Vec<u8>, String)>,
}

/// Most inputs kept in memory; past this, new behaviours replace random entries.
const MAX_CORPUS: usize = 4096;
/// Longest input generated.
const MAX_INPUT: usize = 16 * 1024;

fn fuzz(
    target: &mut dyn Target,
    mut corpus: Vec<Vec<u8>>,
    budget: Duration,
    seed: u64,
    last_panic: &std::sync::Mutex<String>,
) -> Report {
    let started = Instant::now();
    let mut rng = Rng(seed ^ hash(target.name().as_bytes()));
    let mut seen = HashSet::new();
    let mut runs = 0;
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    // The seeds themselves first, then mutations until the budget is spent.
    let mut pending: Vec<Vec<u8>> = corpus.clone();
    pending.reverse();
    loop {
        let input = match pending.pop() {
            Some(input) => input,
            None if started.elapsed() >= budget => break,
            None => mutate(&mut rng, &corpus, target.dictionary()),
        };
        runs += 1;
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| target.run(&input)));
        let signature = match outcome {
            Ok(Ok(signature)) => signature,
            Ok(Err(why)) => {
                return Report {
                    runs,
                    elapsed: started.elapsed(),
                    signatures: seen.len(),
                    corpus: corpus.len(),
                    failure: Some((input, format!("invariant broken: {why}"))),
                };
            }
            Err(_) => {
                let why = last_panic.lock().unwrap_or_else(|e| e.into_inner()).clone();
                return Report {
                    runs,
                    elapsed: started.elapsed(),
                    signatures: seen.len(),
                    corpus: corpus.len(),
                    failure: Some((input, format!("panicked: {why}"))),
                };
            }
        };
        if seen.insert(signature) {
            if corpus.len() < MAX_CORPUS {
                corpus.push(input);
            } else {
                let slot = rng.below(corpus.len());
                corpus[slot] = input;
            }
        }
    }
    Report {
        runs,
        elapsed: started.elapsed(),
        signatures: seen.len(),
        corpus: corpus.len(),
        failure: None,
    }
}

/// A new input from the corpus: one to four edits of a random entry, or random bytes.
fn mutate(rng: &mut Rng, corpus: &[Vec<u8>], dictionary: &[&[u8]]) -> Vec<u8> {
    if rng.below(16) == 0 {
        let len = rng.below(256);
        return (0..len).map(|_| rng.byte()).collect();
    }
    let mut input = corpus[rng.below(corpus.len())].clone();
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(9) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] = rng.byte();
            }
            2 => input.insert(at, rng.byte()),
            3 if !input.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(input.len());
                input.drain(at.min(end)..end);
            }
            4 if at < input.len() => {
                let end = (at + 1 + rng.below(32)).min(input.len());
                let copy = input[at..end].to_vec();
                let to = rng.below(input.len() + 1);
                input.splice(to..to, copy);
            }
            5 => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                let end = (from + rng.below(64)).min(other.len());
                input.splice(at..at, other[from..end].iter().copied());
            }
            6 if !input.is_empty() => {
                // Replace a byte with a control character or a multi-byte one.
                let i = rng.below(input.len());
                let pick: &[u8] =
                    [&b"\r"[..], b"\n", b"\0", b"\t", b"\x7f", "é".as_bytes()][rng.below(6)];
                input.splice(i..=i, pick.iter().copied());
            }
            _ if !dictionary.is_empty() => {
                let word = dictionary[rng.below(dictionary.len())];
                input.splice(at..at, word.iter().copied());
            }
            _ => input.push(rng.byte()),
        }
    }
    input.truncate(MAX_INPUT);
    input
}

fn load_corpus(dir: &Path) -> Result<Vec<Vec<u8>>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the corpus {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.sort();
    files
        .iter()
        .filter(|f| f.is_file())
        .map(|f| std::fs::read(f).with_context(|| format!("reading {}", f.display())))
        .collect()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// A hash of bytes (for signatures and file names), the same for the whole run.
pub fn hash(bytes: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// An input, printable: ASCII as is, the rest escaped.
fn escape(input: &[u8]) -> String {
    input.escape_ascii().to_string()
}

/// splitmix64: small, seeded, good enough to pick mutations.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target that breaks an invariant on one specific input, to show the runner finds it.
    struct Needle;

    impl Target for Needle {
        fn name(&self) -> &'static str {
            "needle"
        }
        fn dictionary(&self) -> &'static [&'static [u8]] {
            &[b"\r\n"]
        }
        fn run(&mut self, input: &[u8]) -> Outcome {
            if input.windows(3).any(|w| w == b"a\r\n") {
                panic!("found it");
            }
            Ok(hash(input) % 8)
        }
    }

    #[test]
    fn the_runner_finds_a_panic_and_reports_the_input() {
        let last = std::sync::Mutex::new(String::new());
        let report = fuzz(
            &mut Needle,
            vec![b"abc".to_vec()],
            Duration::from_secs(10),
            7,
            &last,
        );
        let (input, _) = report
            .failure
            .expect("the needle is found within the budget");
        assert!(input.windows(3).any(|w| w == b"a\r\n"));
    }

    #[test]
    fn the_same_seed_gives_the_same_inputs() {
        let corpus = vec![b"hello".to_vec()];
        let a: Vec<Vec<u8>> = {
            let mut rng = Rng(3);
            (0..50)
                .map(|_| mutate(&mut rng, &corpus, &[b"x"]))
                .collect()
        };
        let b: Vec<Vec<u8>> = {
            let mut rng = Rng(3);
            (0..50)
                .map(|_| mutate(&mut rng, &corpus, &[b"x"]))
                .collect()
        };
        assert_eq!(a, b);
    }
}
