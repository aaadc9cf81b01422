//! Where text goes: the only module that prints (besides `request_log`, whose output is the
//! `-v` log on stderr). Library code returns strings and data.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal, Write};

use regops_spec::{Diagnostics, RenderOptions, Sources};

#[derive(Clone, Copy, Debug)]
pub struct Term {
    /// Colour on stderr (diagnostics).
    pub color: bool,
    /// Colour on stdout (the plan).
    pub color_out: bool,
}

impl Term {
    /// Colour on a terminal, unless NO_COLOR is set (https://no-color.org); `forced` (from
    /// `--color always|never`) says so whatever the terminal and NO_COLOR.
    pub fn new(forced: Option<bool>, no_color_env: bool) -> Self {
        let on = |terminal: bool| forced.unwrap_or(!no_color_env && terminal);
        Term {
            color: on(std::io::stderr().is_terminal()),
            color_out: on(std::io::stdout().is_terminal()),
        }
    }

    pub fn color_stdout(&self) -> bool {
        self.color_out
    }

    pub fn stdout(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        // A closed pipe (`regops render | head`) is not an error worth reporting.
        let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
    }

    /// Writes to stdout through a buffer as it is produced, for output too large to build
    /// first (a JSON plan of a large cluster).
    pub fn stdout_with(&self, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) {
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
        // A closed pipe is not an error worth reporting (as in `stdout`).
        let _ = write(&mut out).and_then(|_| out.flush());
    }

    /// Writes a result in the format asked for (`--output`), as it is produced.
    pub fn view<V: regops_core::format::View>(
        &self,
        view: &V,
        format: regops_core::format::Format,
        style: &regops_core::format::Style,
    ) {
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
        match view
            .write(format, style, &mut out)
            .and_then(|()| out.flush())
        {
            // A closed pipe is not an error worth reporting (as in `stdout`); a view that has
            // no such format is (the flags offer only those it has).
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                drop(out);
                self.note(&format!("error: {e}"));
            }
            _ => {}
        }
    }

    /// A note on stderr. Its line breaks are regops' own; anything else that is control in
    /// it (from a cluster, a file, a helper) is shown escaped.
    pub fn note(&self, text: &str) {
        eprintln!("{}", regops_spec::untrusted::lines(text));
    }

    /// A view regops drew (the plan's text view, before an apply), on stderr as it is: its
    /// colour is regops' own, and the view escaped the data in it.
    pub fn note_view(&self, text: &str) {
        eprintln!("{text}");
    }

    pub fn diagnostics(&self, diags: &Diagnostics, sources: &Sources) {
        if diags.is_empty() {
            return;
        }
        let rendered = regops_spec::diagnostic::render(
            diags,
            sources,
            RenderOptions {
                color: self.color,
                width: 100,
            },
        );
        eprint!("{rendered}");
    }
}

impl Term {
    /// A question on standard error, without a newline.
    pub fn prompt(&self, text: &str) {
        eprint!("{text}");
        let _ = std::io::stderr().flush();
    }
}

/// The longest secret read from the terminal; a longer answer is refused, not cut.
const HIDDEN_MAX: usize = 64 * 1024;

/// The terminal, asking for secrets: from [`Hidden::open`] until it is dropped, nothing typed
/// is echoed. As OpenSSH's `readpassphrase` does, echo is turned off (and what was typed ahead
/// discarded) *before* any prompt is written, so an answer typed or pasted the moment a prompt
/// shows is never echoed; and it stays off between prompts. The line is read a byte at a time
/// (not in canonical mode, which would cap it at 4095 bytes and let Ctrl-C kill regops with
/// echo still off): Enter ends it, Backspace and Ctrl-U edit it, Ctrl-C or Ctrl-\\ cancels,
/// Ctrl-D on an empty line is end of input. The terminal's modes are put back when this is
/// dropped, whichever way the read ended. (A signal sent from elsewhere, `kill`, while a prompt
/// is up ends regops with echo off, as it would any program; `stty sane` restores it.)
pub struct Hidden {
    tty: std::fs::File,
    saved: rustix::termios::Termios,
}

impl Hidden {
    /// Opens the controlling terminal and turns echo, line editing and the keys that send
    /// signals off.
    pub fn open() -> std::io::Result<Hidden> {
        use rustix::termios::{
            LocalModes, OptionalActions, SpecialCodeIndex, tcgetattr, tcsetattr,
        };
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")?;
        let saved = tcgetattr(&tty)?;
        let mut hidden = saved.clone();
        hidden
            .local_modes
            .remove(LocalModes::ECHO | LocalModes::ICANON | LocalModes::ISIG | LocalModes::IEXTEN);
        hidden.special_codes[SpecialCodeIndex::VMIN] = 1;
        hidden.special_codes[SpecialCodeIndex::VTIME] = 0;
        tcsetattr(&tty, OptionalActions::Flush, &hidden)?;
        Ok(Hidden { tty, saved })
    }

    /// Writes `prompt` and reads one answer. The answer is read into one buffer allocated up
    /// front (never grown, so no copy is left behind) that becomes the returned string, zeroed
    /// when dropped.
    pub fn ask(&self, prompt: &str) -> std::io::Result<zeroize::Zeroizing<String>> {
        use std::io::{ErrorKind, Read};
        use zeroize::{Zeroize, Zeroizing};
        let mut io: &std::fs::File = &self.tty;
        io.write_all(prompt.as_bytes())?;
        io.flush()?;
        let mut line = Zeroizing::new(Vec::with_capacity(HIDDEN_MAX));
        let mut byte = Zeroizing::new([0u8; 1]);
        let end = loop {
            if io.read(&mut *byte)? == 0 {
                break Err(ErrorKind::UnexpectedEof.into());
            }
            match byte[0] {
                b'\r' | b'\n' => break Ok(()),
                // Ctrl-C, Ctrl-\\: cancelled.
                0x03 | 0x1c => {
                    break Err(std::io::Error::new(ErrorKind::Interrupted, "cancelled"));
                }
                // Ctrl-D: end of input on an empty line, else nothing (Enter ends a line).
                0x04 if line.is_empty() => break Err(ErrorKind::UnexpectedEof.into()),
                0x04 => {}
                // Backspace: the last character, all of its UTF-8 bytes.
                0x7f | 0x08 => {
                    while let Some(b) = line.pop() {
                        if b & 0xc0 != 0x80 {
                            break;
                        }
                    }
                }
                // Ctrl-U: the whole line.
                0x15 => line.zeroize(),
                _ if line.len() == HIDDEN_MAX => {
                    break Err(std::io::Error::new(
                        ErrorKind::InvalidInput,
                        format!("longer than {HIDDEN_MAX} bytes; give it on standard input"),
                    ));
                }
                b => line.push(b),
            }
        };
        // Echo is off: the line the person ended is ended on the screen by us.
        io.write_all(b"\n")?;
        end?;
        match String::from_utf8(std::mem::take(&mut *line)) {
            Ok(text) => Ok(Zeroizing::new(text)),
            Err(e) => {
                e.into_bytes().zeroize();
                Err(std::io::Error::new(ErrorKind::InvalidData, "not UTF-8"))
            }
        }
    }
}

impl Drop for Hidden {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            &self.tty,
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

/// Progress of a long apply on standard error: a progress bar on a terminal, a plain line per
/// object otherwise (CI logs).
pub struct Progress {
    total: usize,
    done: std::sync::atomic::AtomicUsize,
    enabled: bool,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    pub fn new(_term: &Term, total: usize, enabled: bool) -> Self {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            {
                bar.set_style(style);
            }
            bar
        });
        Progress {
            total,
            done: std::sync::atomic::AtomicUsize::new(0),
            enabled,
            bar,
        }
    }

    pub fn item(&self, r: &regops_core::report::ItemResult) {
        self.item_in(None, r);
    }

    /// As [`Progress::item`], naming the cluster of a fleet run.
    pub fn item_in(&self, cluster: Option<&str>, r: &regops_core::report::ItemResult) {
        let n = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if !self.enabled {
            return;
        }
        let mark = match r.outcome {
            regops_core::report::Outcome::Applied | regops_core::report::Outcome::DryRun => "ok",
            regops_core::report::Outcome::Skipped => "skipped",
            regops_core::report::Outcome::Failed => "FAILED",
        };
        let verb = format!("{:?}", r.action).to_lowercase();
        let at = cluster.map_or(String::new(), |c| format!("cluster {c}: "));
        // Names from the spec and the cluster: data, one line whatever they hold.
        let line = regops_spec::untrusted::terminal(&format!(
            "{mark:<7} {at}{verb} {} {}/{}",
            r.kind, r.namespace, r.name
        ))
        .into_owned();
        match &self.bar {
            Some(bar) => {
                if r.outcome == regops_core::report::Outcome::Failed {
                    bar.println(&line);
                }
                bar.set_message(line);
                bar.inc(1);
            }
            None => eprintln!("[{n}/{}] {line}", self.total),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The log of `apply --watch`: one line per event worth knowing, on standard error, as text
/// (`TIME LEVEL message`) or, with `--output json`, JSON lines with the same fields.
#[derive(Clone, Copy, Debug)]
pub struct Log {
    pub json: bool,
}

impl Log {
    pub fn info(&self, msg: &str) {
        self.line("info", msg, &serde_json::Map::new());
    }

    pub fn warn(&self, msg: &str) {
        self.line("warn", msg, &serde_json::Map::new());
    }

    pub fn error(&self, msg: &str) {
        self.line("error", msg, &serde_json::Map::new());
    }

    /// A line with structured fields (in JSON; in text, only the message is shown).
    pub fn line(
        &self,
        level: &str,
        msg: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) {
        // RFC 3339 in UTC with milliseconds, always three digits (lines align).
        let time = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ");
        let text = if self.json {
            let mut o = serde_json::Map::new();
            o.insert("time".into(), time.to_string().into());
            o.insert("level".into(), level.into());
            o.insert("msg".into(), msg.into());
            for (k, v) in fields {
                o.insert(k.clone(), v.clone());
            }
            serde_json::Value::Object(o).to_string()
        } else {
            // A text log line is one line: what it quotes from outside (names, an API
            // server's message) cannot break it or reach the terminal as control.
            format!(
                "{time} {level:<5} {}",
                regops_spec::untrusted::terminal(msg)
            )
        };
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{text}");
    }
}
