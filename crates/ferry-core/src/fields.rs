use compact_str::CompactString;

use crate::value::Value;

/// An ordered map from field names to values.
///
/// Backed by a vector of pairs rather than a hash map: log events hold a handful of fields, and
/// for those a linear scan beats hashing, keeps insertion order for deterministic output, and
/// costs one allocation per event instead of one per bucket. Names up to 24 bytes are stored
/// inline ([`CompactString`]), so typical keys allocate nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fields {
    entries: Vec<(CompactString, Value)>,
}

impl Fields {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `capacity` fields.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
        }
    }

    /// About how many bytes the names and values take (see [`Value::approximate_size`]).
    pub fn approximate_size(&self) -> usize {
        self.entries
            .iter()
            .map(|(name, value)| name.len() + value.approximate_size())
            .sum()
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The value of `name` for in-place changes, if present.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        self.entries.iter_mut().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// Sets `name` to `value`, keeping the field's position when it already exists; returns the
    /// previous value.
    pub fn insert(&mut self, name: impl Into<CompactString> + AsRef<str>, value: Value) -> Option<Value> {
        if let Some(slot) = self.get_mut(name.as_ref()) {
            return Some(std::mem::replace(slot, value));
        }
        self.entries.push((name.into(), value));
        None
    }

    /// Appends a field without looking for an existing one of the same name.
    ///
    /// For decoders that already know the names are distinct (a JSON object with duplicate keys
    /// is resolved by [`Fields::insert`] instead).
    pub fn push_unchecked(&mut self, name: CompactString, value: Value) {
        self.entries.push((name, value));
    }

    /// Removes `name`, keeping the order of the other fields; returns its value.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let index = self.entries.iter().position(|(k, _)| k == name)?;
        Some(self.entries.remove(index).1)
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The fields in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The fields in insertion order, mutable values.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Value)> {
        self.entries.iter_mut().map(|(k, v)| (k.as_str(), v))
    }

    /// Keeps only the fields for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut Value) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }
}

impl<K: Into<CompactString> + AsRef<str>> FromIterator<(K, Value)> for Fields {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        let mut fields = Fields::new();
        for (k, v) in iter {
            fields.insert(k, v);
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_keeps_position_of_existing_field() {
        let mut f = Fields::new();
        f.insert("a", Value::from(1));
        f.insert("b", Value::from(2));
        assert_eq!(f.insert("a", Value::from(3)), Some(Value::from(1)));
        let keys: Vec<_> = f.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(f.get("a"), Some(&Value::from(3)));
    }

    #[test]
    fn remove_keeps_order_of_the_rest() {
        let mut f: Fields = [("a", Value::Null), ("b", Value::Null), ("c", Value::Null)]
            .into_iter()
            .collect();
        assert_eq!(f.remove("b"), Some(Value::Null));
        assert_eq!(f.remove("b"), None);
        let keys: Vec<_> = f.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "c"]);
    }
}
