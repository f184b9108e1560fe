//! Whole numbers as JSON Schema reads them: `4` and `4.0` are both the integer 4 (serde
//! reads only the first into an integer type). For `#[serde(deserialize_with = …)]` on the
//! integer fields of request bodies, so a client that writes `4.0` is not refused.

use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum Num {
    Int(i64),
    Float(f64),
}

fn to_i64<E: serde::de::Error>(n: Num) -> Result<i64, E> {
    match n {
        Num::Int(i) => Ok(i),
        // 2^53: past it a float no longer says which integer it was.
        Num::Float(f) if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 => Ok(f as i64),
        Num::Float(f) => Err(E::custom(format!("{f} is not a whole number"))),
    }
}

pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    to_i64(Num::deserialize(d)?)
}

pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<Num>::deserialize(d)?.map(to_i64).transpose()
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug)]
    struct T {
        #[serde(deserialize_with = "super::i64")]
        n: i64,
        #[serde(default, deserialize_with = "super::opt_i64")]
        o: Option<i64>,
    }

    #[test]
    fn integers_and_integral_floats() {
        let t: T = serde_json::from_str(r#"{"n": 4.0, "o": 7}"#).expect("whole numbers");
        assert_eq!((t.n, t.o), (4, Some(7)));
        let t: T = serde_json::from_str(r#"{"n": -3}"#).expect("no o");
        assert_eq!((t.n, t.o), (-3, None));
        assert!(serde_json::from_str::<T>(r#"{"n": 4.5}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"n": 1e300}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"n": "4"}"#).is_err());
    }
}
