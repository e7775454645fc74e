//! CNI plugins (see the networking issue).
