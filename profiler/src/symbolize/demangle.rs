//! Demangling, as blazesym does it for a symbol of no known language:
//! Rust's manglings first, then C++'s. Done here so that the symbol as the
//! binary spells it stays known (pprof's `system_name`).

use std::borrow::Cow;

use super::Symbolizer;

impl Symbolizer {
    /// `symbol` demangled, unless names are kept raw or it is not mangled.
    pub(super) fn demangled<'a>(&self, symbol: &'a str) -> Cow<'a, str> {
        if !self.demangle {
            return Cow::Borrowed(symbol);
        }
        demangle(symbol)
    }
}

fn demangle(symbol: &str) -> Cow<'_, str> {
    if let Ok(rust) = rustc_demangle::try_demangle(symbol) {
        // `#`: without the hash that legacy manglings end in.
        return Cow::Owned(format!("{rust:#}"));
    }
    cpp_demangle::Symbol::new(symbol)
        .ok()
        .and_then(|cpp| cpp.demangle().ok())
        .map_or(Cow::Borrowed(symbol), Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::demangle;

    #[test]
    fn rust_and_cpp_symbols_are_demangled_and_c_names_kept() {
        assert_eq!(
            demangle("_ZN4core3ptr13drop_in_place17h0123456789abcdefE"),
            "core::ptr::drop_in_place"
        );
        assert_eq!(demangle("_RNvCs1234_7mycrate4main"), "mycrate::main");
        assert_eq!(demangle("_ZN2ns5Shape4areaEv"), "ns::Shape::area()");
        assert_eq!(demangle("hot_leaf"), "hot_leaf");
    }
}
