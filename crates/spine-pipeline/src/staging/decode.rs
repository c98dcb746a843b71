//! A `Read` adapter that transcodes a byte stream (UTF-16, windows-1252) to UTF-8 on the fly with
//! `encoding_rs`, in fixed buffers. Malformed sequences become U+FFFD.

use std::io::{self, Read};

use encoding_rs::{CoderResult, Decoder, Encoding};

const CHUNK: usize = 64 * 1024;

pub(crate) struct DecodeReader<R> {
    inner: R,
    decoder: Decoder,
    input: Vec<u8>,
    in_pos: usize,
    in_len: usize,
    output: Vec<u8>,
    out_pos: usize,
    out_len: usize,
    eof: bool,
    done: bool,
}

impl<R: Read> DecodeReader<R> {
    /// `encoding` without BOM handling: the caller has already consumed any BOM.
    pub(crate) fn new(inner: R, encoding: &'static Encoding) -> Self {
        Self {
            inner,
            decoder: encoding.new_decoder_without_bom_handling(),
            input: vec![0; CHUNK],
            in_pos: 0,
            in_len: 0,
            output: vec![0; CHUNK * 3 + 16],
            out_pos: 0,
            out_len: 0,
            eof: false,
            done: false,
        }
    }

    /// Decodes the next chunk into `output`. Returns false when everything has been decoded.
    fn fill(&mut self) -> io::Result<bool> {
        loop {
            if self.done {
                return Ok(false);
            }
            if self.in_pos == self.in_len && !self.eof {
                self.in_pos = 0;
                self.in_len = read_some(&mut self.inner, &mut self.input)?;
                self.eof = self.in_len == 0;
            }
            let src = &self.input[self.in_pos..self.in_len];
            let (result, read, written, _) = self.decoder.decode_to_utf8(src, &mut self.output, self.eof);
            self.in_pos += read;
            self.out_pos = 0;
            self.out_len = written;
            if self.eof && result == CoderResult::InputEmpty {
                self.done = true;
            }
            if written > 0 {
                return Ok(true);
            }
        }
    }
}

impl<R: Read> Read for DecodeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.out_pos == self.out_len && !self.fill()? {
            return Ok(0);
        }
        let n = (self.out_len - self.out_pos).min(buf.len());
        buf[..n].copy_from_slice(&self.output[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

/// One `read`, retried on `Interrupted`.
pub(crate) fn read_some<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Reads until `buf` is full or the input ends; returns how much was read.
pub(crate) fn read_up_to<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let k = read_some(r, &mut buf[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}
