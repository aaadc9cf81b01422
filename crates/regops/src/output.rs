//! Where text goes: the only module that prints. Library code returns strings and data.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal, Write};

use regops_spec::{Diagnostics, RenderOptions, Sources};

use crate::cli::ColorChoice;

#[derive(Clone, Copy, Debug)]
pub struct Term {
    /// Colour on stderr (diagnostics).
    pub color: bool,
    /// Colour on stdout (the plan).
    pub color_out: bool,
}

impl Term {
    /// Colour on a terminal, unless NO_COLOR is set (https://no-color.org) or `--color` says.
    pub fn new(choice: ColorChoice, no_color_env: bool) -> Self {
        let on = |terminal: bool| match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => !no_color_env && terminal,
        };
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

    pub fn note(&self, text: &str) {
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
