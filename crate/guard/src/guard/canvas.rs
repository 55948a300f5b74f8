//! The canvas a guard works on (fixed tokens, holes, committed tokens) and the guard's
//! configuration: plain data, no state sets.

/// Default of [`GuardConfig::small_set`].
const SMALL_SET: usize = 8;

/// One position of a canvas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// A fixed token of the prompt or suffix.
    Fixed(u32),
    /// A hole the model fills.
    Hole,
    /// A hole filled by [`Guard::commit`].
    Committed(u32),
}

impl Slot {
    /// The token at this slot, if any.
    pub fn token(self) -> Option<u32> {
        match self {
            Slot::Fixed(t) | Slot::Committed(t) => Some(t),
            Slot::Hole => None,
        }
    }
}

/// A canvas: fixed prompt tokens, holes and an optional fixed suffix (several holes and
/// fixed runs may alternate).
///
/// # Example
/// ```
/// use ward_guard::{Canvas, Slot};
/// let c = Canvas::infill(&[1, 2], 3, &[4]);
/// assert_eq!(c.len(), 6);
/// assert_eq!(c.slots()[2], Slot::Hole);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Canvas {
    slots: Vec<Slot>,
}

impl Canvas {
    /// An empty canvas, to be built with [`Canvas::fixed`] and [`Canvas::holes`].
    pub fn new() -> Canvas {
        Canvas::default()
    }

    /// A prefix, `holes` holes, and a suffix (empty for plain generation).
    pub fn infill(prefix: &[u32], holes: usize, suffix: &[u32]) -> Canvas {
        Canvas::new().fixed(prefix).holes(holes).fixed(suffix)
    }

    /// A canvas from slots (`Committed` slots are taken as fixed).
    pub fn from_slots(slots: impl IntoIterator<Item = Slot>) -> Canvas {
        Canvas {
            slots: slots
                .into_iter()
                .map(|s| match s {
                    Slot::Committed(t) => Slot::Fixed(t),
                    s => s,
                })
                .collect(),
        }
    }

    /// Appends fixed tokens.
    pub fn fixed(mut self, tokens: &[u32]) -> Canvas {
        self.slots.extend(tokens.iter().map(|&t| Slot::Fixed(t)));
        self
    }

    /// Appends `n` holes.
    pub fn holes(mut self, n: usize) -> Canvas {
        self.slots.extend(std::iter::repeat_n(Slot::Hole, n));
        self
    }

    /// Number of positions.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when the canvas has no position.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The slots.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }
}

/// Options of a [`Guard`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardConfig {
    /// Longest canvas accepted, in tokens (default 8192).
    pub max_len: usize,
    /// Performance knob: state sets with at most this many states are stepped state by
    /// state; larger ones through memoised byte-class steps (default 8; results are
    /// identical).
    pub small_set: usize,
    /// Whether a hole may take an end-of-text token while the text has not ended yet
    /// (default true). With false, masks are exact for samplers that never end the text in
    /// a hole: end tokens are refused there (without blame), and no mask counts on an earlier
    /// hole ending the text. Fixed end tokens in the canvas still end the text.
    pub end_in_holes: bool,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            max_len: 8192,
            small_set: SMALL_SET,
            end_in_holes: true,
        }
    }
}
