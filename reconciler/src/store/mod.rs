//! The content-addressed image store under `<dir>/cas` (owner: the store work).
