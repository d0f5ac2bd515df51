//! A plugin for a world version the host does not support.

wit_bindgen::generate!({ path: "wit", world: "plugin" });

struct Future;

impl exports::paygate::provider::provider::Guest for Future {
    fn info() -> String {
        "from the future".into()
    }
}

export!(Future);
