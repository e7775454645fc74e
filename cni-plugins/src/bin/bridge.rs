//! The `bridge` CNI plugin.

fn main() -> std::process::ExitCode {
    cni_plugins::skel::run_plugin(cni_plugins::bridge::PLUGIN)
}
