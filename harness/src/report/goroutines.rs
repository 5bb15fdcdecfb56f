//! The goroutine growth of a Go target (`goroutines-start.txt` to `goroutines-end.txt`), as
//! the Markdown summary, the HTML report and the terminal show it.

use std::fmt::Write;

use super::markdown::{cell, heap_value};
use super::svg::esc;
use crate::heap::GoroutineDiff;
use crate::heap::goroutines::{END_NAME, START_NAME};

fn n(x: i64) -> String {
    heap_value(x, "count")
}

fn signed(x: i64) -> String {
    format!("{}{}", if x < 0 { "−" } else { "+" }, n(x.abs()))
}

/// The goroutine growth paragraph and table of `summary.md`.
pub fn markdown(g: &Result<GoroutineDiff, String>) -> String {
    let d = match g {
        Ok(d) => d,
        Err(e) => {
            return format!(
                "**Goroutine growth:** the dumps could not be compared: {}\n\n",
                cell(e)
            );
        }
    };
    let mut out = format!(
        "**Goroutine growth** (from `{START_NAME}` to `{END_NAME}`): {} before the load, {} after ({}).",
        n(d.start_total),
        n(d.end_total),
        signed(d.end_total - d.start_total),
    );
    if d.groups.is_empty() {
        out.push_str(" No group of goroutines grew.\n\n");
        return out;
    }
    out.push_str(
        " The groups that grew most, by where they wait and the code that started them:\n\n",
    );
    out.push_str(
        "| blocked in | state | created by | before | after | growth |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for g in &d.groups {
        let entry = g
            .entry
            .as_deref()
            .map(|e| format!(" in `{}`", cell(e)))
            .unwrap_or_default();
        let created = match (&g.created_by, &g.created_at) {
            (Some(c), Some(at)) => format!("`{}` ({})", cell(c), cell(at)),
            (Some(c), None) => format!("`{}`", cell(c)),
            _ => "–".into(),
        };
        let _ = writeln!(
            out,
            "| `{}`{entry} | {} | {created} | {} | {} | {} |",
            cell(&g.blocked_in),
            cell(&g.state),
            n(g.start),
            n(g.end),
            signed(g.growth()),
        );
    }
    out.push('\n');
    out
}

/// The goroutine growth section of `report.html`.
pub fn html(h: &mut String, g: &Result<GoroutineDiff, String>) {
    h.push_str("<h2>Goroutine growth</h2>\n");
    let d = match g {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(
                h,
                "<p class=\"alert\">The goroutine dumps could not be compared: {}</p>",
                esc(e)
            );
            return;
        }
    };
    let _ = writeln!(
        h,
        "<p>From <code>{START_NAME}</code> to <code>{END_NAME}</code>: {} goroutines before the \
         load, {} after, grouped by where they wait and the code that started them.</p>",
        n(d.start_total),
        n(d.end_total),
    );
    if d.groups.is_empty() {
        h.push_str("<p>No group of goroutines grew.</p>\n");
        return;
    }
    h.push_str(
        "<table id=\"goroutines\" style=\"table-layout:fixed;overflow-wrap:anywhere\">\
         <tr><th>blocked in</th><th>state</th><th>created by</th><th>before</th><th>after</th>\
         <th>growth</th></tr>\n",
    );
    for g in &d.groups {
        let entry = g
            .entry
            .as_deref()
            .map(|e| format!(" in <code>{}</code>", esc(e)))
            .unwrap_or_default();
        let created = match (&g.created_by, &g.created_at) {
            (Some(c), at) => format!(
                "<code>{}</code>{}",
                esc(c),
                at.as_deref()
                    .map(|a| format!(" <span class=\"why\">{}</span>", esc(a)))
                    .unwrap_or_default()
            ),
            _ => "–".into(),
        };
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code>{entry}</td><td>{}</td><td>{created}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&g.blocked_in),
            esc(&g.state),
            n(g.start),
            n(g.end),
            esc(&signed(g.growth())),
        );
    }
    h.push_str("</table>\n");
}

/// The goroutine growth in one line for the terminal: the totals and the group that grew most.
pub fn line(g: &Result<GoroutineDiff, String>) -> String {
    let d = match g {
        Ok(d) => d,
        Err(e) => return format!("Goroutines: the dumps could not be compared: {e}"),
    };
    let mut line = format!(
        "Goroutines: {} → {} between {START_NAME} and {END_NAME}",
        n(d.start_total),
        n(d.end_total),
    );
    if let Some(top) = d.groups.first() {
        let _ = write!(
            line,
            "; {} goroutines blocked in {}; all groups: summary.md",
            signed(top.growth()),
            top.describe()
        );
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heap::GoroutineGroup;

    #[test]
    fn the_top_group_names_its_wait_and_its_creator() {
        let d = GoroutineDiff {
            start_total: 7,
            end_total: 165_007,
            groups: vec![GoroutineGroup {
                state: "chan receive".into(),
                blocked_in: "main.watchItem".into(),
                entry: None,
                created_by: Some("main.item".into()),
                created_at: Some("app/main.go:344".into()),
                start: 0,
                end: 165_000,
            }],
        };
        let l = line(&Ok(d.clone()));
        assert!(
            l.contains("blocked in main.watchItem (chan receive), created by main.item"),
            "{l}"
        );
        let md = markdown(&Ok(d.clone()));
        assert!(
            md.contains("| `main.watchItem` | chan receive | `main.item` (app/main.go:344) |"),
            "{md}"
        );
        let mut h = String::new();
        html(&mut h, &Ok(d));
        assert!(h.contains("<code>main.item</code>"), "{h}");
        let bad = Err("goroutines-end.txt: not a goroutine dump".to_string());
        assert!(line(&bad).contains("could not be compared: goroutines-end.txt"));
        assert!(markdown(&bad).contains("could not be compared"));
    }
}
