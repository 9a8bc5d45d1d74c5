//! Printing results: an aligned table for people, JSON for scripts (`--json`).

use serde_json::Value;

/// A command's result in both shapes.
pub struct Report {
    pub table: Table,
    pub json: Value,
    /// Services a command over every service could not reach: it still prints what it found,
    /// then exits non-zero.
    pub unreachable: Vec<String>,
}

impl Report {
    pub fn print(&self, json: bool) {
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&self.json).unwrap_or_else(|_| "null".into())
            );
        } else {
            print!("{}", self.table.render());
        }
    }
}

/// A plain-text table: a header row, then one row per item, columns padded to their widest cell.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    /// Printed instead of the table when there are no rows.
    empty: String,
    /// Lines printed after the table (totals, next steps).
    notes: Vec<String>,
}

impl Table {
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(headers: I) -> Table {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            ..Table::default()
        }
    }

    /// Text only: no columns, just lines.
    pub fn lines<I: IntoIterator<Item = S>, S: Into<String>>(lines: I) -> Table {
        Table {
            notes: lines.into_iter().map(Into::into).collect(),
            ..Table::default()
        }
    }

    pub fn row<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, cells: I) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    pub fn when_empty(mut self, message: impl Into<String>) -> Table {
        self.empty = message.into();
        self
    }

    pub fn note(&mut self, line: impl Into<String>) {
        self.notes.push(line.into());
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.headers.is_empty() {
            if self.rows.is_empty() {
                if !self.empty.is_empty() {
                    out.push_str(&self.empty);
                    out.push('\n');
                }
            } else {
                let mut widths: Vec<usize> =
                    self.headers.iter().map(|h| h.chars().count()).collect();
                for row in &self.rows {
                    for (i, cell) in row.iter().enumerate() {
                        if i < widths.len() {
                            widths[i] = widths[i].max(cell.chars().count());
                        }
                    }
                }
                let line = |cells: &[String]| {
                    let padded: Vec<String> = cells
                        .iter()
                        .enumerate()
                        .map(|(i, cell)| {
                            let width = widths.get(i).copied().unwrap_or(0);
                            format!("{cell:<width$}")
                        })
                        .collect();
                    format!("{}\n", padded.join("  ").trim_end())
                };
                out.push_str(&line(&self.headers));
                for row in &self.rows {
                    out.push_str(&line(row));
                }
            }
        }
        for note in &self.notes {
            out.push_str(note);
            out.push('\n');
        }
        out
    }
}

/// Cut `text` to at most `max` characters for a table cell (JSON keeps it whole).
pub fn clip(text: &str, max: usize) -> String {
    let one_line = text.replace('\n', " ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let kept: String = one_line.chars().take(max.saturating_sub(1)).collect();
        format!("{kept}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_to_the_widest_cell() {
        let mut table = Table::new(["ID", "NAME"]);
        table.row(["1", "alpha"]);
        table.row(["200", "b"]);
        assert_eq!(table.render(), "ID   NAME\n1    alpha\n200  b\n");
    }

    #[test]
    fn an_empty_table_says_so() {
        let table = Table::new(["ID"]).when_empty("no dead letters");
        assert_eq!(table.render(), "no dead letters\n");
    }

    #[test]
    fn long_cells_are_clipped_to_one_line() {
        assert_eq!(clip("abc\ndef", 20), "abc def");
        assert_eq!(clip("abcdef", 4), "abc…");
    }
}
