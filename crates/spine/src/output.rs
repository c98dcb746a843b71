//! Command output on stdout. Logs never go here.

use std::io::Write;

use serde::Serialize;

pub fn json<T: Serialize>(value: &T) {
    let s = serde_json::to_string_pretty(value).expect("output serialises");
    text(&s);
}

pub fn text(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    if !s.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

/// Rows as aligned columns under a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut s = line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        s.push('\n');
        s.push_str(&line(r.clone()));
    }
    text(&s);
}
