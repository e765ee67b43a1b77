//! `shell.exec`: placeholder until the interpreter lands.

use assay_trace::Effect;

use crate::World;

pub(crate) fn exec(_w: &mut World, command: &str, _fx: &mut Vec<Effect>) -> (bool, String) {
    (false, format!("sh: {command}: not implemented\n[exit 127]"))
}
