//! Placeholder: the generator helper fills this in.
