//! Running client programs (kubectl, Python) with a time limit, capturing
//! their output, and running long-lived ones (`kubectl get -w`) in the
//! background while the test reads their output line by line.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What a finished program printed and how it ended.
#[derive(Debug)]
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ {}\n({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `command` to completion, feeding it `stdin`, and kills it when it
/// takes longer than `limit`.
pub fn run(mut command: Command, stdin: Option<&[u8]>, limit: Duration) -> Output {
    let line = describe(&command);
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    testkit::set_parent_death_signal(&mut command);
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{line}`: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let input = input.to_vec();
        // A writer thread, so a program that does not read its stdin (or
        // fails before it does) cannot block the test on a full pipe.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let stdout = reader(child.stdout.take().expect("stdout is piped"));
    let stderr = reader(child.stderr.take().expect("stderr is piped"));
    let deadline = Instant::now() + limit;
    let out = stdout.recv_timeout(limit);
    let timed_out = out.is_err();
    if timed_out {
        terminate(&mut child);
    }
    let stdout_text = out.unwrap_or_else(|_| stdout.recv().unwrap_or_default());
    let remaining = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(1);
    let stderr_text = stderr.recv_timeout(remaining).unwrap_or_else(|_| {
        terminate(&mut child);
        stderr.recv().unwrap_or_default()
    });
    let status = child.wait().expect("waiting for a child we spawned");
    let output = Output {
        command: line,
        status,
        stdout: stdout_text,
        stderr: stderr_text,
    };
    assert!(!timed_out, "timed out after {limit:?}:\n{output}");
    output
}

fn reader(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    rx
}

/// SIGKILL; a no-op for a child already reaped (std remembers, so a
/// recycled pid is never signalled).
fn terminate(child: &mut Child) {
    let _ = child.kill();
}

/// A command line as a shell would show it.
pub fn describe(command: &Command) -> String {
    let mut parts = vec![command.get_program().to_string_lossy().into_owned()];
    parts.extend(command.get_args().map(|a| {
        let a = a.to_string_lossy();
        if a.contains(' ') || a.is_empty() {
            format!("'{a}'")
        } else {
            a.into_owned()
        }
    }));
    parts.join(" ")
}

/// Which output a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A program running in the background whose stdout and stderr are read
/// line by line. Dropping it kills the program.
pub struct Background {
    command: String,
    child: Child,
    lines: mpsc::Receiver<(Stream, String)>,
    seen: Vec<String>,
    seen_err: Vec<String>,
    /// How many lines of `seen` and `seen_err` earlier matches used up.
    matched: (usize, usize),
}

impl Background {
    /// Starts `command` with stdout and stderr captured.
    pub fn spawn(mut command: Command) -> Self {
        let line = describe(&command);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        testkit::set_parent_death_signal(&mut command);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{line}`: {e}"));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        forward(stdout, Stream::Stdout, tx.clone());
        forward(stderr, Stream::Stderr, tx);
        Self {
            command: line,
            child,
            lines,
            seen: Vec::new(),
            seen_err: Vec::new(),
            matched: (0, 0),
        }
    }

    /// Waits up to `limit` for a stdout line matching `matches` and
    /// returns it; panics with everything printed so far when none comes.
    /// Lines read while waiting for the other stream count too, and each
    /// line matches at most once, in order.
    pub fn expect_line(&mut self, limit: Duration, matches: impl Fn(&str) -> bool) -> String {
        self.expect(Stream::Stdout, limit, matches)
    }

    /// The same for stderr (where `-v=6` logs requests).
    pub fn expect_err_line(&mut self, limit: Duration, matches: impl Fn(&str) -> bool) -> String {
        self.expect(Stream::Stderr, limit, matches)
    }

    fn expect(
        &mut self,
        stream: Stream,
        limit: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let (lines, used) = match stream {
                Stream::Stdout => (&self.seen, &mut self.matched.0),
                Stream::Stderr => (&self.seen_err, &mut self.matched.1),
            };
            if let Some(i) = lines[*used..].iter().position(|l| matches(l)) {
                *used += i + 1;
                return lines[*used - 1].clone();
            }
            *used = lines.len();
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((Stream::Stdout, line)) => self.seen.push(line),
                Ok((Stream::Stderr, line)) => self.seen_err.push(line),
                Err(_) => {
                    let status = self.child.try_wait().ok().flatten();
                    panic!(
                        "no matching {stream:?} line from `{}` within {limit:?} (exit: {status:?}); \
                         stdout so far:\n{}\nstderr so far:\n{}",
                        self.command,
                        self.seen.join("\n"),
                        self.seen_err.join("\n")
                    );
                }
            }
        }
    }

    /// Every stdout line read so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// Waits for the program to exit by itself within `limit`, then returns
    /// its exit status and the stdout lines no match used.
    pub fn wait(mut self, limit: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + limit;
        let mut rest = self.seen[self.matched.0..].to_vec();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((Stream::Stdout, line)) => rest.push(line),
                Ok((Stream::Stderr, line)) => self.seen_err.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "`{}` did not exit within {limit:?}; stdout:\n{}\nstderr:\n{}",
                        self.command,
                        self.seen
                            .iter()
                            .chain(&rest)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join("\n"),
                        self.seen_err.join("\n")
                    );
                }
            }
        }
        let status = self.child.wait().expect("waiting for a child we spawned");
        if !status.success() {
            eprintln!(
                "`{}` exited with {status}; stderr:\n{}",
                self.command,
                self.seen_err.join("\n")
            );
        }
        (status, rest)
    }
}

fn forward(pipe: impl Read + Send + 'static, stream: Stream, tx: mpsc::Sender<(Stream, String)>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send((stream, line)).is_err() {
                break;
            }
        }
    });
}

impl Drop for Background {
    fn drop(&mut self) {
        terminate(&mut self.child);
        let _ = self.child.wait();
    }
}
