//! Entry points for Ferry's fuzz targets and their corpus replay test: the internal scanners
//! they compare against other parsers. Not part of the supported API (hidden from the docs);
//! nothing outside those checks should call it.

/// What [`quick_scan`] found in a line it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuickScan<'a> {
    /// The object has a top-level `host`.
    pub has_host: bool,
    /// The object has a top-level `timestamp`.
    pub has_timestamp: bool,
    /// The text of the last top-level `timestamp`, a string without escapes.
    pub timestamp: Option<&'a [u8]>,
}

/// The quick JSON object check behind [`crate::RawJsonObject::scan`]: `Some` only when `line`
/// is exactly one JSON object; `None` when it is not, or when the scan leaves the line to
/// serde_json.
pub fn quick_scan(line: &[u8]) -> Option<QuickScan<'_>> {
    crate::json_scan::quick_scan(line).map(|shape| QuickScan {
        has_host: shape.has_host,
        has_timestamp: shape.has_timestamp,
        timestamp: shape.timestamp,
    })
}
