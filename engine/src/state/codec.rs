//! How typed values and keys become bytes. Each codec names its [`ValueEncoding`], which
//! is recorded with the state so tools can decode values without this code.
use formats::value::{fixed, ValueEncoding};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::StateError;

pub trait StateCodec: Sized + 'static {
    fn encoding() -> ValueEncoding;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(bytes: &[u8]) -> Result<Self, String>;
}

/// Plain values use the fixed-width encodings `formats::value::fixed` defines.
macro_rules! fixed_codec {
    ($t:ty, $enc:ident, $put:ident, $get:ident) => {
        impl StateCodec for $t {
            fn encoding() -> ValueEncoding {
                ValueEncoding::$enc
            }
            fn encode(&self, out: &mut Vec<u8>) {
                fixed::$put(out, *self);
            }
            fn decode(b: &[u8]) -> Result<Self, String> {
                fixed::$get(b).map_err(|e| e.to_string())
            }
        }
    };
}
fixed_codec!(i64, I64, put_i64, get_i64);
fixed_codec!(u64, U64, put_u64, get_u64);
fixed_codec!(f64, F64, put_f64, get_f64);
fixed_codec!(bool, Bool, put_bool, get_bool);

impl StateCodec for () {
    fn encoding() -> ValueEncoding {
        ValueEncoding::Unit
    }
    fn encode(&self, _: &mut Vec<u8>) {}
    fn decode(b: &[u8]) -> Result<Self, String> {
        fixed::get_unit(b).map_err(|e| e.to_string())
    }
}

impl StateCodec for String {
    fn encoding() -> ValueEncoding {
        ValueEncoding::Utf8
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
    fn decode(b: &[u8]) -> Result<Self, String> {
        String::from_utf8(b.to_vec()).map_err(|e| e.to_string())
    }
}

impl StateCodec for Vec<u8> {
    fn encoding() -> ValueEncoding {
        ValueEncoding::Bytes
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn decode(b: &[u8]) -> Result<Self, String> {
        Ok(b.to_vec())
    }
}

/// Encodes any serde type as MessagePack with named fields (self-describing).
pub fn msgpack_encode<T: Serialize>(v: &T, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail for I/O reasons; a serializer error here means the
    // type cannot be represented at all, which is a programming error in the state type.
    if let Err(e) = rmp_serde::encode::write_named(out, v) {
        panic!("state value cannot be encoded as MessagePack: {e}");
    }
}

pub fn msgpack_decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, String> {
    rmp_serde::from_slice(b).map_err(|e| e.to_string())
}

/// Implements [`StateCodec`] for a serde type through MessagePack:
/// `sluice::msgpack_codec!(MyStruct);`
#[macro_export]
macro_rules! msgpack_codec {
    ($t:ty) => {
        impl $crate::StateCodec for $t {
            fn encoding() -> $crate::ValueEncoding {
                formats::value::ValueEncoding::MsgPack
            }
            fn encode(&self, out: &mut Vec<u8>) {
                $crate::msgpack_encode(self, out)
            }
            fn decode(b: &[u8]) -> Result<Self, String> {
                $crate::msgpack_decode(b)
            }
        }
    };
}

impl<A, B> StateCodec for (A, B)
where
    A: Serialize + DeserializeOwned + 'static,
    B: Serialize + DeserializeOwned + 'static,
{
    fn encoding() -> ValueEncoding {
        ValueEncoding::MsgPack
    }
    fn encode(&self, out: &mut Vec<u8>) {
        msgpack_encode(self, out)
    }
    fn decode(b: &[u8]) -> Result<Self, String> {
        msgpack_decode(b)
    }
}

/// Keys of a keyed stream. The bytes are what is hashed into a key group and stored.
pub trait Key: Clone + Send + 'static {
    fn encoding() -> ValueEncoding;
    fn write_key(&self, out: &mut Vec<u8>);
    fn read_key(b: &[u8]) -> Option<Self>;
}

impl<T: StateCodec + Clone + Send> Key for T {
    fn encoding() -> ValueEncoding {
        <T as StateCodec>::encoding()
    }
    fn write_key(&self, out: &mut Vec<u8>) {
        self.encode(out)
    }
    fn read_key(b: &[u8]) -> Option<Self> {
        T::decode(b).ok()
    }
}

pub(crate) fn decode_err(state: &str, reason: String) -> StateError {
    StateError::Decode { state: state.to_owned(), reason }
}
