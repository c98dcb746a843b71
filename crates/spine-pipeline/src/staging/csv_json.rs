//! A CSV record written straight into COPY data as a JSON object, without building a
//! `serde_json::Map` first: the header's keys are escaped and put in jsonb's order once, and
//! each row writes its fields' text escaped in place. Half of what the parser thread spent per
//! row went into the map (allocations, B-tree inserts, sorting, frees); bench/README.md has the
//! figures. Rows that need more care (not valid UTF-8, NUL bytes, stray fields) take the `Map`
//! path instead.

use spine_store::repos::staging::jsonb_key_order;

/// The header as object keys: for each column, in jsonb's key order, its index and the bytes
/// `"key":` with the key escaped.
#[derive(Debug, Default)]
pub(crate) struct JsonKeys {
    keys: Vec<(usize, Vec<u8>)>,
}

impl JsonKeys {
    pub(crate) fn new(header: &[String]) -> Self {
        let mut order: Vec<usize> = (0..header.len()).collect();
        order.sort_by(|&a, &b| jsonb_key_order(&header[a], &header[b]));
        let keys = order
            .into_iter()
            .map(|i| {
                let mut key = Vec::with_capacity(header[i].len() + 3);
                push_json_string(&mut key, &header[i]);
                key.push(b':');
                (i, key)
            })
            .collect();
        Self { keys }
    }

    /// Writes the object of a record with `n` fields (those past the header are left out, as are
    /// the header's columns past `n`); `field(i)` is the text of field `i`.
    pub(crate) fn write<'a>(&self, out: &mut Vec<u8>, n: usize, field: impl Fn(usize) -> &'a str) {
        out.push(b'{');
        let mut first = true;
        for (i, key) in self.keys.iter().filter(|(i, _)| *i < n) {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(key);
            push_json_string(out, field(*i));
        }
        out.push(b'}');
    }
}

/// Appends `s` as a JSON string literal, escaped by serde_json.
pub(crate) fn push_json_string(out: &mut Vec<u8>, s: &str) {
    // Serializing a string into a Vec has no way to fail: the writer cannot, and a str is UTF-8.
    if let Err(e) = serde_json::to_writer(&mut *out, s) {
        unreachable!("writing a JSON string into a Vec failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_as_serde_json_does() {
        let samples =
            ["", "plain", "quote \" back \\ slash", "\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f} ", "é ✓ 𝄞 \u{7f}", "</script>"];
        for s in samples {
            let mut out = Vec::new();
            push_json_string(&mut out, s);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn objects_have_jsonb_key_order_and_skip_missing_fields() {
        let header: Vec<String> = ["name", "id", "e\"mail", "zz"].map(String::from).to_vec();
        let keys = JsonKeys::new(&header);
        let fields = ["Ada", "7", "a@x", "last"];
        let mut out = Vec::new();
        keys.write(&mut out, 4, |i| fields[i]);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, r#"{"id":"7","zz":"last","name":"Ada","e\"mail":"a@x"}"#);
        let mut out = Vec::new();
        keys.write(&mut out, 2, |i| fields[i]);
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"id":"7","name":"Ada"}"#, "a short row");
        let mut out = Vec::new();
        keys.write(&mut out, 0, |i| fields[i]);
        assert_eq!(out, b"{}");
    }
}
