//! The dictionary of an OTLP profiles request: the tables every index in
//! it points into, each item once, the zero value first.

use std::{borrow::Borrow, collections::HashMap, hash::Hash};

use opentelemetry_proto::tonic::{
    common::v1::{AnyValue, any_value::Value},
    profiles::v1development::{
        Function, KeyValueAndUnit, Line, Link, Location, Mapping, ProfilesDictionary, Stack,
        ValueType,
    },
};

/// The tables every index in the request points into, shared by all its
/// profiles.
#[derive(Default)]
pub(super) struct Dictionary {
    pub(super) strings: Table<String>,
    pub(super) functions: Table<Function>,
    pub(super) mappings: Table<Mapping>,
    pub(super) locations: Table<LocationKey>,
    pub(super) stacks: Table<Stack>,
    pub(super) attributes: Table<(i32, Attribute)>,
}

/// A `Location` without attributes: the generated one is not `Hash`.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub(super) struct LocationKey {
    pub(super) mapping_index: i32,
    pub(super) address: u64,
    pub(super) lines: Vec<Line>,
}

/// An attribute value, as the dictionary keys it (`AnyValue` is not
/// `Hash`). `None` is the zero entry's missing value.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub(super) enum Attribute {
    #[default]
    None,
    Int(i64),
    Str(String),
}

impl Dictionary {
    pub(super) fn string(&mut self, text: &str) -> i32 {
        self.strings.intern(text)
    }

    pub(super) fn value_type(&mut self, kind: &str, unit: &str) -> ValueType {
        ValueType {
            type_strindex: self.string(kind),
            unit_strindex: self.string(unit),
        }
    }

    pub(super) fn attribute(&mut self, key: &str, value: Attribute) -> i32 {
        let key = self.string(key);
        self.attributes.intern(&(key, value))
    }

    pub(super) fn finish(self) -> ProfilesDictionary {
        let location_table = self.locations.items.into_iter();
        let attribute_table = self.attributes.items.into_iter();
        ProfilesDictionary {
            mapping_table: self.mappings.items,
            location_table: location_table
                .map(|l| Location {
                    mapping_index: l.mapping_index,
                    address: l.address,
                    lines: l.lines,
                    attribute_indices: Vec::new(),
                })
                .collect(),
            function_table: self.functions.items,
            // No sample links to a span, but the null link must be there.
            link_table: vec![Link::default()],
            string_table: self.strings.items,
            attribute_table: attribute_table
                .map(|(key_strindex, value)| KeyValueAndUnit {
                    key_strindex,
                    value: match value {
                        Attribute::None => None,
                        Attribute::Int(n) => Some(Value::IntValue(n)),
                        // Not StringValueStrindex: receivers of this
                        // development version need not know it yet.
                        Attribute::Str(s) => Some(Value::StringValue(s)),
                    }
                    .map(|value| AnyValue { value: Some(value) }),
                    unit_strindex: 0,
                })
                .collect(),
            stack_table: self.stacks.items,
        }
    }
}

/// A dictionary table: each item once, the zero value at index 0 (which
/// OTLP reads as "not set", so an item equal to it is not set either).
pub(super) struct Table<T> {
    items: Vec<T>,
    index: HashMap<T, i32>,
}

impl<T: Clone + Default + Eq + Hash> Default for Table<T> {
    fn default() -> Table<T> {
        Table {
            items: vec![T::default()],
            index: HashMap::from([(T::default(), 0)]),
        }
    }
}

impl<T: Eq + Hash> Table<T> {
    pub(super) fn intern<Q>(&mut self, item: &Q) -> i32
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = T> + ?Sized,
    {
        if let Some(&index) = self.index.get(item) {
            return index;
        }
        // Indices are int32 on the wire; a window holds far fewer items.
        let index = i32::try_from(self.items.len()).expect("dictionary table past i32::MAX");
        self.items.push(item.to_owned());
        self.index.insert(item.to_owned(), index);
        index
    }
}
