//! The protobuf wire format, read field by field.

/// How a value is laid out on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireType {
    /// 0: a base-128 varint.
    Varint,
    /// 1: eight little-endian bytes.
    Fixed64,
    /// 2: a varint length, then that many bytes.
    Len,
    /// 5: four little-endian bytes.
    Fixed32,
}

/// One field as read from the wire, before its type is known.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    /// The four bytes are not kept: no Kubernetes field is a fixed32.
    Fixed32,
}

impl Value<'_> {
    pub(crate) fn wire_type(&self) -> WireType {
        match self {
            Value::Varint(_) => WireType::Varint,
            Value::Fixed64(_) => WireType::Fixed64,
            Value::Len(_) => WireType::Len,
            Value::Fixed32 => WireType::Fixed32,
        }
    }
}

/// A problem with the bytes themselves, and the field it was met in (0 when
/// the field's key could not be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireError {
    pub tag: u32,
    pub detail: &'static str,
}

/// Reads the fields of one message, in the order they were written.
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        Some(self.field())
    }
}

impl<'a> Fields<'a> {
    fn field(&mut self) -> Result<(u32, Value<'a>), WireError> {
        let key = varint(&mut self.buf).map_err(|detail| WireError { tag: 0, detail })?;
        let tag = u32::try_from(key >> 3).map_err(|_| WireError {
            tag: 0,
            detail: "field number out of range",
        })?;
        let fail = |detail| WireError { tag, detail };
        if tag == 0 {
            return Err(fail("field number 0"));
        }
        let value = match key & 7 {
            0 => Value::Varint(varint(&mut self.buf).map_err(fail)?),
            1 => Value::Fixed64(u64::from_le_bytes(take::<8>(&mut self.buf).map_err(fail)?)),
            2 => {
                let len = varint(&mut self.buf).map_err(fail)?;
                let len = usize::try_from(len).map_err(|_| fail("length out of range"))?;
                if len > self.buf.len() {
                    return Err(fail("length past the end of the message"));
                }
                let (bytes, rest) = self.buf.split_at(len);
                self.buf = rest;
                Value::Len(bytes)
            }
            5 => {
                take::<4>(&mut self.buf).map_err(fail)?;
                Value::Fixed32
            }
            3 | 4 => return Err(fail("groups are not used by Kubernetes")),
            _ => return Err(fail("invalid wire type")),
        };
        Ok((tag, value))
    }
}

/// Reads a base-128 varint (at most ten bytes) from the front of `buf`.
pub(crate) fn varint(buf: &mut &[u8]) -> Result<u64, &'static str> {
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            if i == 9 && byte > 1 {
                return Err("varint overflows 64 bits");
            }
            *buf = &buf[i + 1..];
            return Ok(value);
        }
    }
    Err(if buf.len() >= 10 {
        "varint longer than ten bytes"
    } else {
        "varint past the end of the message"
    })
}

fn take<const N: usize>(buf: &mut &[u8]) -> Result<[u8; N], &'static str> {
    if buf.len() < N {
        return Err("fixed-width value past the end of the message");
    }
    let (head, rest) = buf.split_at(N);
    *buf = rest;
    Ok(head.try_into().expect("split at N"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_varints_and_lengths() {
        // Field 1 varint 150, field 2 "hi", field 3 fixed64, field 4 fixed32.
        let bytes = [
            0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i', 0x19, 1, 0, 0, 0, 0, 0, 0, 0, 0x25, 2, 0, 0,
            0,
        ];
        let fields: Vec<_> = Fields::new(&bytes).collect::<Result<_, _>>().unwrap();
        assert!(matches!(fields[0], (1, Value::Varint(150))));
        assert!(matches!(fields[1], (2, Value::Len(b"hi"))));
        assert!(matches!(fields[2], (3, Value::Fixed64(1))));
        assert!(matches!(fields[3], (4, Value::Fixed32)));
    }

    #[test]
    fn reads_negative_int32_as_ten_bytes() {
        let mut bytes: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(varint(&mut bytes).unwrap() as i64 as i32, -1);
        assert!(bytes.is_empty());
    }

    #[test]
    fn refuses_truncated_and_impossible_data() {
        let err = |bytes: &[u8]| Fields::new(bytes).next().unwrap().unwrap_err();
        assert_eq!(
            err(&[0x12, 0x05, b'a']),
            WireError {
                tag: 2,
                detail: "length past the end of the message"
            }
        );
        assert_eq!(err(&[0x08]).detail, "varint past the end of the message");
        assert_eq!(err(&[0x0b]).detail, "groups are not used by Kubernetes");
        assert_eq!(err(&[0x0e]).detail, "invalid wire type");
        assert_eq!(err(&[0x00]).detail, "field number 0");
        assert_eq!(err(&[0x80]).tag, 0);
    }
}
