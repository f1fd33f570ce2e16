//! Local `file:` backend — to be implemented.
