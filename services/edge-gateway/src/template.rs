//! `google.api.http` path templates:
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! Verb     = ":" LITERAL ;
//! ```
//!
//! A template compiles to a flat list of segments (variables only remember which range of it they
//! capture), which is what the router's trie is built from.

use std::fmt;

use percent_encoding::percent_decode_str;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Literal(String),
    /// `*`: exactly one non-empty segment.
    Single,
    /// `**`: the rest of the path, zero or more segments. Only last.
    Multi,
}

/// A `{field.path=...}` capture of segments `start..end` (`end` is the template's length when the
/// variable ends in `**`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    pub field_path: Vec<String>,
    pub start: usize,
    pub end: usize,
    /// Its own pattern, e.g. `*` or `projects/*/tasks/*`.
    pub pattern: String,
}

impl Variable {
    /// A plain `{var}` / `{var=*}`: its value is fully percent-decoded. Wider variables keep
    /// reserved characters encoded, so an encoded `/` stays distinguishable from a separator.
    pub fn is_single_segment(&self, template: &PathTemplate) -> bool {
        self.end == self.start + 1 && template.segments[self.start] == Segment::Single
    }

    pub fn dotted(&self) -> String {
        self.field_path.join(".")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    pub segments: Vec<Segment>,
    pub variables: Vec<Variable>,
    pub verb: Option<String>,
    pub raw: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path template `{template}`: {message}")]
pub struct TemplateError {
    template: String,
    message: String,
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
    segments: Vec<Segment>,
    variables: Vec<Variable>,
}

impl PathTemplate {
    pub fn parse(text: &str) -> Result<PathTemplate, TemplateError> {
        let fail = |message: &str| TemplateError {
            template: text.to_owned(),
            message: message.to_owned(),
        };
        if !text.starts_with('/') {
            return Err(fail("must start with `/`"));
        }
        let mut parser = Parser {
            text,
            at: 1,
            segments: Vec::new(),
            variables: Vec::new(),
        };
        parser.segments_until(false).map_err(|m| fail(&m))?;
        let verb = match parser.peek() {
            None => None,
            Some(':') => {
                let verb = &text[parser.at + 1..];
                if verb.is_empty() || verb.contains(['/', '{', '}', ':', '*']) {
                    return Err(fail("the verb after `:` must be a plain literal"));
                }
                Some(verb.to_owned())
            }
            Some(c) => return Err(fail(&format!("unexpected `{c}`"))),
        };
        let segments = parser.segments;
        if let Some(pos) = segments.iter().position(|s| *s == Segment::Multi)
            && pos + 1 != segments.len()
        {
            return Err(fail("`**` may only be the last segment"));
        }
        let mut seen = std::collections::HashSet::new();
        for variable in &parser.variables {
            if !seen.insert(variable.dotted()) {
                return Err(fail(&format!(
                    "variable `{}` appears twice",
                    variable.dotted()
                )));
            }
        }
        Ok(PathTemplate {
            segments,
            variables: parser.variables,
            verb,
            raw: text.to_owned(),
        })
    }

    /// The values of the variables for request path segments `raw` (undecoded) that this template
    /// matched, as `(variable, decoded value)`.
    pub fn captures<'t>(&'t self, raw: &[&str]) -> Result<Vec<(&'t Variable, String)>, String> {
        let mut out = Vec::with_capacity(self.variables.len());
        for variable in &self.variables {
            let end = if self.segments.get(variable.end - 1) == Some(&Segment::Multi) {
                raw.len()
            } else {
                variable.end
            };
            let parts = raw.get(variable.start..end).unwrap_or(&[]);
            let value = if variable.is_single_segment(self) {
                decode_all(parts.first().copied().unwrap_or(""))?
            } else {
                decode_unreserved(&parts.join("/"))?
            };
            out.push((variable, value));
        }
        Ok(out)
    }

    /// The template as an OpenAPI path, and its parameters in order. A plain variable is one
    /// parameter named by its field path; a variable spanning several segments keeps its literals
    /// and names each wildcard `<field>_<n>` (what a client fills in to build the value); `**` is one
    /// parameter whose value may hold encoded slashes.
    pub fn openapi(&self) -> (String, Vec<OpenApiParam>) {
        let mut out = String::new();
        let mut params = Vec::new();
        for (index, segment) in self.segments.iter().enumerate() {
            out.push('/');
            let owner = self
                .variables
                .iter()
                .enumerate()
                .find(|(_, v)| (v.start..v.end).contains(&index));
            match (segment, owner) {
                (Segment::Literal(literal), _) => out.push_str(literal),
                (_, Some((variable_index, variable))) if variable.is_single_segment(self) => {
                    push_param(
                        &mut out,
                        &mut params,
                        variable.dotted(),
                        variable_index,
                        false,
                    );
                }
                (segment, Some((variable_index, variable))) => {
                    let name = if *segment == Segment::Multi {
                        variable.dotted()
                    } else {
                        let n = params
                            .iter()
                            .filter(|p| p.variable == variable_index)
                            .count()
                            + 1;
                        format!("{}_{n}", variable.dotted())
                    };
                    push_param(
                        &mut out,
                        &mut params,
                        name,
                        variable_index,
                        *segment == Segment::Multi,
                    );
                }
                (Segment::Single, None) => out.push('*'),
                (Segment::Multi, None) => out.push_str("**"),
            }
        }
        if let Some(verb) = &self.verb {
            out.push(':');
            out.push_str(verb);
        }
        (out, params)
    }
}

/// One OpenAPI path parameter of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenApiParam {
    pub name: String,
    /// The index of the variable it fills.
    pub variable: usize,
    /// `**`: the rest of the path.
    pub rest: bool,
}

fn push_param(
    out: &mut String,
    params: &mut Vec<OpenApiParam>,
    name: String,
    variable: usize,
    rest: bool,
) {
    // A nested field's path (`{preference.category}`) is named with `_` in the document: many
    // clients and generators fill path templates with format strings, which read a dot as
    // attribute access. The URL a client builds is the same either way.
    let name = name.replace('.', "_");
    out.push('{');
    out.push_str(&name);
    out.push('}');
    params.push(OpenApiParam {
        name,
        variable,
        rest,
    });
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.at..].chars().next()
    }

    fn segments_until(&mut self, in_variable: bool) -> Result<(), String> {
        loop {
            self.segment(in_variable)?;
            match self.peek() {
                Some('/') => self.at += 1,
                _ => return Ok(()),
            }
        }
    }

    fn segment(&mut self, in_variable: bool) -> Result<(), String> {
        let rest = &self.text[self.at..];
        if rest.starts_with("**") {
            self.at += 2;
            self.segments.push(Segment::Multi);
        } else if rest.starts_with('*') {
            self.at += 1;
            self.segments.push(Segment::Single);
        } else if rest.starts_with('{') {
            if in_variable {
                return Err("variables cannot nest".into());
            }
            self.variable()?;
        } else {
            let len = rest
                .find(['/', '{', '}', ':', '*', '='])
                .unwrap_or(rest.len());
            if len == 0 {
                return Err(format!("empty segment at byte {}", self.at));
            }
            self.segments.push(Segment::Literal(rest[..len].to_owned()));
            self.at += len;
        }
        Ok(())
    }

    fn variable(&mut self) -> Result<(), String> {
        self.at += 1;
        let rest = &self.text[self.at..];
        let len = rest.find(['=', '}']).ok_or("unclosed `{`")?;
        let path = &rest[..len];
        let field_path: Vec<String> = path.split('.').map(str::to_owned).collect();
        if field_path.iter().any(|ident| !is_ident(ident)) {
            return Err(format!("`{path}` is not a field path"));
        }
        self.at += len;
        let start = self.segments.len();
        let pattern_start = self.at + 1;
        if self.peek() == Some('=') {
            self.at += 1;
            self.segments_until(true)?;
        } else {
            self.segments.push(Segment::Single);
        }
        let pattern = if self.segments.len() == start + 1 && self.segments[start] == Segment::Single
        {
            "*".to_owned()
        } else {
            self.text[pattern_start..self.at].to_owned()
        };
        if self.peek() != Some('}') {
            return Err("unclosed `{`".into());
        }
        self.at += 1;
        self.variables.push(Variable {
            field_path,
            start,
            end: self.segments.len(),
            pattern,
        });
        Ok(())
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Fully percent-decode one segment; it must be UTF-8.
pub fn decode_all(raw: &str) -> Result<String, String> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| "is not valid UTF-8 once percent-decoded".to_owned())
}

/// Percent-decode all but RFC 6570 reserved characters (which stay encoded, so `%2F` remains
/// distinguishable from `/`).
pub fn decode_unreserved(raw: &str) -> Result<String, String> {
    const RESERVED: &[u8] = b"!#$&'()*+,/:;=?@[]";
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = bytes.get(i + 1..i + 3).and_then(|hex| {
                std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
        {
            if RESERVED.contains(&byte) {
                out.extend_from_slice(&bytes[i..i + 3]);
            } else {
                out.push(byte);
            }
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "is not valid UTF-8 once percent-decoded".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Segment {
        Segment::Literal(s.into())
    }

    #[test]
    fn templates_parse_into_segments_variables_and_verbs() {
        type Case = (
            &'static str,
            Vec<Segment>,
            Vec<(&'static str, usize, usize)>,
            Option<&'static str>,
        );
        let cases: &[Case] = &[
            ("/v1/tenants", vec![lit("v1"), lit("tenants")], vec![], None),
            (
                "/v1/tenants/{tenant_id}",
                vec![lit("v1"), lit("tenants"), Segment::Single],
                vec![("tenant_id", 2, 3)],
                None,
            ),
            (
                "/v1/tenants/{tenant_id}:approve",
                vec![lit("v1"), lit("tenants"), Segment::Single],
                vec![("tenant_id", 2, 3)],
                Some("approve"),
            ),
            (
                "/v1/{name=projects/*/tasks/*}",
                vec![
                    lit("v1"),
                    lit("projects"),
                    Segment::Single,
                    lit("tasks"),
                    Segment::Single,
                ],
                vec![("name", 1, 5)],
                None,
            ),
            (
                "/v1/files/{path=**}:download",
                vec![lit("v1"), lit("files"), Segment::Multi],
                vec![("path", 2, 3)],
                Some("download"),
            ),
            (
                "/v1/*/x/**",
                vec![lit("v1"), Segment::Single, lit("x"), Segment::Multi],
                vec![],
                None,
            ),
            (
                "/v1/{a.b}/{c}",
                vec![lit("v1"), Segment::Single, Segment::Single],
                vec![("a.b", 1, 2), ("c", 2, 3)],
                None,
            ),
        ];
        for (text, segments, variables, verb) in cases {
            let template = PathTemplate::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(&template.segments, segments, "{text}");
            let got: Vec<(String, usize, usize)> = template
                .variables
                .iter()
                .map(|v| (v.dotted(), v.start, v.end))
                .collect();
            let want: Vec<(String, usize, usize)> = variables
                .iter()
                .map(|(n, s, e)| (n.to_string(), *s, *e))
                .collect();
            assert_eq!(got, want, "{text}");
            assert_eq!(template.verb.as_deref(), *verb, "{text}");
        }
    }

    #[test]
    fn malformed_templates_are_refused() {
        for text in [
            "v1/x",
            "/v1/{a",
            "/v1/{a={b}}",
            "/v1/**/x",
            "/v1/{1a}",
            "/v1//x",
            "/v1/x:",
            "/v1/{a}/{a}",
        ] {
            assert!(PathTemplate::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn single_segment_captures_are_fully_decoded_and_wider_ones_keep_reserved_characters() {
        let t = PathTemplate::parse("/v1/{id}/{rest=**}").expect("valid");
        let got = t
            .captures(&["v1", "a%2Fb%20c", "x", "y%2Fz%41"])
            .expect("decodes");
        assert_eq!(got[0].1, "a/b c");
        assert_eq!(got[1].1, "x/y%2FzA");
    }

    #[test]
    fn openapi_paths_keep_literals_and_name_every_wildcard() {
        let t = PathTemplate::parse("/v1/{name=projects/*/tasks/*}/runs/{run}:go").expect("valid");
        let (path, params) = t.openapi();
        assert_eq!(path, "/v1/projects/{name_1}/tasks/{name_2}/runs/{run}:go");
        let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["name_1", "name_2", "run"]);
        let (path, _) = PathTemplate::parse("/v1/files/{path=**}")
            .expect("valid")
            .openapi();
        assert_eq!(path, "/v1/files/{path}");
    }
}
