use compact_str::CompactString;
use ferry_core::{FieldPath, Fields, PathSegment, Value};

/// The `only_fields` / `except_fields` selection, compiled into a tree of names so encoders
/// decide per field while they write, without copying the event.
#[derive(Clone, Debug, Default)]
pub enum FieldFilter {
    /// Every field.
    #[default]
    All,
    /// Only the listed paths (and the maps on the way to them).
    Only(FilterNode),
    /// Everything but the listed paths.
    Except(FilterNode),
}

/// One level of the filter tree.
#[derive(Clone, Debug, Default)]
pub struct FilterNode {
    children: Vec<(CompactString, FilterNode)>,
    /// A listed path ends here: the whole value is selected (or excluded).
    terminal: bool,
}

/// What to do with one field while encoding.
pub(crate) enum Decision<'a> {
    Skip,
    Whole,
    /// The field is a map some of whose fields are selected: filter inside it with this scope.
    Descend(Scope<'a>),
}

/// The filter as seen from one nesting level.
#[derive(Clone, Copy)]
pub(crate) enum Scope<'a> {
    All,
    Only(&'a FilterNode),
    Except(&'a FilterNode),
}

impl FilterNode {
    fn from_paths<'a>(paths: impl IntoIterator<Item = &'a FieldPath>) -> Self {
        let mut root = FilterNode::default();
        for path in paths {
            let mut node = &mut root;
            for segment in path.segments() {
                // Index segments are refused by `EncodingConfig::validate`; ignore them here.
                let PathSegment::Field(name) = segment else { break };
                let position = node.children.iter().position(|(n, _)| n == name);
                let index = match position {
                    Some(i) => i,
                    None => {
                        node.children.push((name.clone(), FilterNode::default()));
                        node.children.len() - 1
                    }
                };
                node = &mut node.children[index].1;
            }
            node.terminal = true;
        }
        root
    }

    fn child(&self, name: &str) -> Option<&FilterNode> {
        self.children.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }
}

impl FieldFilter {
    /// The filter for an `encoding` table's `only_fields` / `except_fields`.
    pub fn new(only: Option<&[FieldPath]>, except: Option<&[FieldPath]>) -> Self {
        match (only, except) {
            (Some(only), _) => FieldFilter::Only(FilterNode::from_paths(only)),
            (None, Some(except)) => FieldFilter::Except(FilterNode::from_paths(except)),
            (None, None) => FieldFilter::All,
        }
    }

    pub(crate) fn scope(&self) -> Scope<'_> {
        match self {
            FieldFilter::All => Scope::All,
            FieldFilter::Only(node) => Scope::Only(node),
            FieldFilter::Except(node) => Scope::Except(node),
        }
    }

    /// A filtered copy of `fields` (the encoders filter while writing; this is for callers that
    /// need the selection itself).
    pub fn apply(&self, fields: &Fields) -> Fields {
        filtered(fields, self.scope())
    }
}

impl<'a> Scope<'a> {
    pub(crate) fn decide(self, name: &str, value: &Value) -> Decision<'a> {
        let is_map = matches!(value, Value::Object(_));
        match self {
            Scope::All => Decision::Whole,
            Scope::Only(node) => match (node.child(name), value) {
                (None, _) => Decision::Skip,
                (Some(child), _) if child.terminal => Decision::Whole,
                // A map is kept only for the selected fields inside it; without any, it is
                // left out rather than written as an empty map.
                (Some(child), Value::Object(nested))
                    if nested
                        .iter()
                        .any(|(k, v)| !matches!(Scope::Only(child).decide(k, v), Decision::Skip)) =>
                {
                    Decision::Descend(Scope::Only(child))
                }
                (Some(_), _) => Decision::Skip,
            },
            Scope::Except(node) => match node.child(name) {
                None => Decision::Whole,
                Some(child) if child.terminal => Decision::Skip,
                Some(child) if is_map => Decision::Descend(Scope::Except(child)),
                Some(_) => Decision::Whole,
            },
        }
    }
}

fn filtered(fields: &Fields, scope: Scope<'_>) -> Fields {
    let mut out = Fields::with_capacity(fields.len());
    for (name, value) in fields.iter() {
        match scope.decide(name, value) {
            Decision::Skip => {}
            Decision::Whole => out.push_unchecked(name.into(), value.clone()),
            Decision::Descend(inner) => {
                if let Value::Object(nested) = value {
                    out.push_unchecked(name.into(), Value::Object(filtered(nested, inner)));
                }
            }
        }
    }
    out
}
