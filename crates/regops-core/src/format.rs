//! One way output is produced: every result regops shows (a plan, an apply's report, drift,
//! validate's verdicts, and each of them over a fleet) is a [`View`], which says in one place
//! which formats it has and writes each. The commands pick the view and the [`Format`] the
//! user asked for; `--output` offers exactly the formats of the command's view.

use std::io::{self, Write};

use crate::view::Detail;

/// A format a view can be written in (`--output`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Text, Format::Json, Format::Markdown];

    /// As `--output` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Markdown => "markdown",
        }
    }

    pub fn parse(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// What the text and Markdown views take besides the result.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    /// Colour in the text view.
    pub color: bool,
    /// How much of a large plan the text view lists.
    pub detail: Detail,
    /// The size a Markdown view keeps under (a pull-request comment's limit).
    pub max_bytes: usize,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            color: false,
            detail: Detail::Summary,
            max_bytes: usize::MAX,
        }
    }
}

/// A result that can be shown.
pub trait View {
    /// The formats this view has, the first being the default, each with what it gives (the
    /// help of `--output`).
    const FORMATS: &'static [(Format, &'static str)];

    /// Writes the view in `format`; a format not in [`View::FORMATS`] is refused.
    fn write(&self, format: Format, style: &Style, w: &mut dyn Write) -> io::Result<()>;

    /// The view in `format`, as a string.
    fn render(&self, format: Format, style: &Style) -> io::Result<String> {
        let mut out = Vec::new();
        self.write(format, style, &mut out)?;
        String::from_utf8(out).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

/// Writes a report that has a text and a JSON view (apply, drift, validate, and their fleet
/// forms): the one asked for, built by `text` or `json`.
pub fn write_report<V: View + ?Sized>(
    format: Format,
    w: &mut dyn Write,
    text: impl FnOnce() -> String,
    json: impl FnOnce() -> String,
) -> io::Result<()> {
    let out = match format {
        Format::Text => text(),
        Format::Json => json(),
        Format::Markdown => return Err(unsupported::<V>(format)),
    };
    w.write_all(out.as_bytes())
}

/// The answer of a view asked for a format it does not have.
pub fn unsupported<V: View + ?Sized>(format: Format) -> io::Error {
    let have: Vec<&str> = V::FORMATS.iter().map(|(f, _)| f.name()).collect();
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "no {} view here (there is {})",
            format.name(),
            have.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in Format::ALL {
            assert_eq!(Format::parse(f.name()), Some(f));
        }
        assert_eq!(Format::parse("yaml"), None);
    }
}
