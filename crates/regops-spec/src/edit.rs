//! In-place edits of spec files that keep everything else as written: comments, order, quoting
//! and layout. An edit replaces exactly the source range of one value (or inserts one entry),
//! and the result is parsed again and checked before anything is written.

use crate::{Diagnostics, FileId, Node, Sources, SpecFormat, Value};

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("no credential `{0}` in the spec")]
    NoSuchCredential(String),
    #[error(
        "credential `{name}` at {position} is written inline; write it as a block mapping (YAML) or a table (TOML) so regops can add the password"
    )]
    InlineCredential { name: String, position: String },
    #[error("the edited spec no longer reads back as expected ({0}); nothing was written")]
    Verify(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// What the password becomes.
pub enum NewPassword<'a> {
    /// ASCII-armored age ciphertext, inline.
    Armored(&'a str),
    /// `{ ageFile: PATH }`.
    AgeFile(&'a str),
}

/// A replacement of `range` in one file's text.
#[derive(Debug, Clone)]
pub struct Edit {
    pub file: FileId,
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// The credential's mapping node and the file it is in.
pub fn find_credential(sources: &Sources, name: &str) -> Result<(FileId, Node), EditError> {
    for id in 0..sources.files().len() {
        let mut ignored = Diagnostics::default();
        let Some(root) = sources.parse(id, &mut ignored) else {
            continue;
        };
        if let Some(cred) = root.get("credentials").and_then(|c| c.get(name)) {
            return Ok((id, cred.clone()));
        }
    }
    Err(EditError::NoSuchCredential(name.to_string()))
}

fn column(text: &str, offset: usize) -> usize {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    text[line_start..offset].chars().count()
}

fn quoted(s: &str) -> String {
    // JSON strings are valid YAML double-quoted scalars and TOML basic strings for this
    // alphabet (armor is base64, '-', spaces and newlines; paths are escaped).
    serde_json::to_string(s).unwrap_or_default()
}

/// The edit that sets credential `name`'s password.
pub fn set_password(
    sources: &Sources,
    name: &str,
    new: &NewPassword<'_>,
) -> Result<Edit, EditError> {
    let (file, cred) = find_credential(sources, name)?;
    let source = sources
        .get(file)
        .ok_or_else(|| EditError::NoSuchCredential(name.to_string()))?;
    let text = &*source.text;
    let inline = text[cred.loc.start..].starts_with('{');
    let Value::Map(entries) = &cred.value else {
        return Err(EditError::NoSuchCredential(name.to_string()));
    };
    let existing = entries.iter().find(|(k, _)| k.value == "password");
    match existing {
        Some((key, value)) => {
            let indent = column(text, key.loc.start) + 2;
            let mut replacement = render_value(source.format, new, indent, inline);
            let mut end = value.loc.end;
            // A comment after the old value would land inside a block scalar: move it onto the
            // block's header line (`password: |  # comment`), where YAML allows it.
            if let Some(rest) = replacement.strip_prefix("|\n") {
                let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
                let trailing = text[end..line_end].trim();
                if trailing.starts_with('#') {
                    replacement = format!("|  {trailing}\n{rest}");
                    end = line_end;
                }
            }
            Ok(Edit {
                file,
                start: value.loc.start,
                end,
                text: replacement,
            })
        }
        None => {
            if inline || entries.is_empty() {
                return Err(EditError::InlineCredential {
                    name: name.to_string(),
                    position: sources.position(cred.loc),
                });
            }
            let (first_key, _) = &entries[0];
            let (_, last_value) = &entries[entries.len() - 1];
            let key_col = column(text, first_key.loc.start);
            let line_end = text[last_value.loc.end..]
                .find('\n')
                .map_or(text.len(), |i| last_value.loc.end + i);
            let value = render_value(source.format, new, key_col + 2, false);
            let sep = match source.format {
                SpecFormat::Yaml => ": ",
                SpecFormat::Toml => " = ",
            };
            let insert = format!("\n{}password{sep}{value}", " ".repeat(key_col));
            Ok(Edit {
                file,
                start: line_end,
                end: line_end,
                text: insert,
            })
        }
    }
}

fn render_value(format: SpecFormat, new: &NewPassword<'_>, indent: usize, inline: bool) -> String {
    match new {
        NewPassword::AgeFile(path) => match format {
            SpecFormat::Yaml => format!("{{ ageFile: {} }}", quoted(path)),
            SpecFormat::Toml => format!("{{ ageFile = {} }}", quoted(path)),
        },
        NewPassword::Armored(armor) if inline => quoted(&format!("{}\n", armor.trim_end())),
        NewPassword::Armored(armor) => {
            let lines: Vec<&str> = armor.trim_end().lines().collect();
            match format {
                SpecFormat::Yaml => {
                    let pad = " ".repeat(indent);
                    let body: Vec<String> = lines.iter().map(|l| format!("{pad}{l}")).collect();
                    format!("|\n{}", body.join("\n"))
                }
                SpecFormat::Toml => format!("'''\n{}\n'''", lines.join("\n")),
            }
        }
    }
}

/// Applies edits to their files' texts (several per file allowed, non-overlapping), returning
/// the new texts by file.
pub fn apply(sources: &Sources, mut edits: Vec<Edit>) -> Vec<(FileId, String)> {
    edits.sort_by(|a, b| (a.file, b.start).cmp(&(b.file, a.start)));
    let mut out: Vec<(FileId, String)> = Vec::new();
    for e in edits {
        if out.last().is_none_or(|(f, _)| *f != e.file) {
            let text = sources
                .get(e.file)
                .map(|f| f.text.to_string())
                .unwrap_or_default();
            out.push((e.file, text));
        }
        if let Some((_, text)) = out.last_mut() {
            text.replace_range(e.start..e.end, &e.text);
        }
    }
    out
}

/// Checks that after the edit, credential `name` reads back with the new password.
pub fn verify(
    format: SpecFormat,
    text: &str,
    name: &str,
    new: &NewPassword<'_>,
) -> Result<(), EditError> {
    let mut sources = Sources::default();
    let id = sources.add("edited".into(), text.to_string(), format);
    let mut diags = Diagnostics::default();
    let root = sources
        .parse(id, &mut diags)
        .ok_or_else(|| EditError::Verify("it does not parse".into()))?;
    let pw = root
        .get("credentials")
        .and_then(|c| c.get(name))
        .and_then(|c| c.get("password"));
    let ok = match (pw.map(|p| &p.value), new) {
        (Some(Value::Scalar(s)), NewPassword::Armored(armor)) => s.text.trim() == armor.trim(),
        (Some(Value::Map(_)), NewPassword::AgeFile(path)) => {
            matches!(pw.and_then(|p| p.get("ageFile")).map(|n| &n.value), Some(Value::Scalar(s)) if s.text == *path)
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(EditError::Verify(format!(
            "credential `{name}` does not hold the new password"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARMOR: &str = "-----BEGIN AGE ENCRYPTED FILE-----\nYWdlLWVuY3J5cHRpb24=\n-----END AGE ENCRYPTED FILE-----\n";

    fn edit_one(format: SpecFormat, text: &str, name: &str, new: NewPassword<'_>) -> String {
        let mut s = Sources::default();
        s.add("x".into(), text.into(), format);
        let e = set_password(&s, name, &new).unwrap();
        let (_, out) = apply(&s, vec![e]).remove(0);
        verify(format, &out, name, &new).unwrap();
        out
    }

    #[test]
    fn yaml_replace_keeps_comments_and_layout() {
        let text = "# top\ncredentials:\n  harbor:   # robot\n    username: robot$ci\n    password: { env: X }  # was env\n  other:\n    username: o\n    password: { env: Y }\n";
        let out = edit_one(
            SpecFormat::Yaml,
            text,
            "harbor",
            NewPassword::Armored(ARMOR),
        );
        insta::assert_snapshot!(out);
    }

    #[test]
    fn yaml_replace_block_scalar_and_insert_missing() {
        let text = "credentials:\n  a:\n    password: |\n      -----BEGIN AGE ENCRYPTED FILE-----\n      b2xk\n      -----END AGE ENCRYPTED FILE-----\n    username: u\n  b:\n    username: v\n# end\n";
        let out = edit_one(SpecFormat::Yaml, text, "a", NewPassword::Armored(ARMOR));
        let out2 = {
            let mut s = Sources::default();
            s.add("x".into(), out.clone(), SpecFormat::Yaml);
            let e = set_password(&s, "b", &NewPassword::AgeFile("b.age")).unwrap();
            apply(&s, vec![e]).remove(0).1
        };
        verify(SpecFormat::Yaml, &out2, "b", &NewPassword::AgeFile("b.age")).unwrap();
        insta::assert_snapshot!(out2);
    }

    #[test]
    fn yaml_flow_credential_gets_a_quoted_string() {
        let text = "credentials:\n  a: { username: u, password: { env: X } }\n";
        let out = edit_one(SpecFormat::Yaml, text, "a", NewPassword::Armored(ARMOR));
        assert!(out.contains("password: \"-----BEGIN AGE ENCRYPTED FILE-----\\n"));
    }

    #[test]
    fn toml_replace_and_insert() {
        let text = "# spec\n[credentials.a]\nusername = \"u\" # user\npassword = { env = \"X\" }\n\n[credentials.b]\nusername = \"v\"\n\n[registries.r]\nserver = \"r.example.com\"\n";
        let out = edit_one(SpecFormat::Toml, text, "a", NewPassword::Armored(ARMOR));
        let mut s = Sources::default();
        s.add("x".into(), out, SpecFormat::Toml);
        let e = set_password(&s, "b", &NewPassword::Armored(ARMOR)).unwrap();
        let out2 = apply(&s, vec![e]).remove(0).1;
        verify(SpecFormat::Toml, &out2, "b", &NewPassword::Armored(ARMOR)).unwrap();
        verify(SpecFormat::Toml, &out2, "a", &NewPassword::Armored(ARMOR)).unwrap();
        insta::assert_snapshot!(out2);
    }

    #[test]
    fn unknown_credential() {
        let mut s = Sources::default();
        s.add("x".into(), "credentials: {}\n".into(), SpecFormat::Yaml);
        assert!(matches!(
            set_password(&s, "nope", &NewPassword::AgeFile("p")),
            Err(EditError::NoSuchCredential(_))
        ));
    }
}
