//! Every linked component's own example must load as a working configuration: this catches
//! an example that drifted from its config struct, and a component that was not linked.

#[cfg(test)]
mod tests {
    use std::path::Path;

    use ferry_core::{ComponentKind, registered_components};

    /// The ID of the first `[sources.ID]` / `[sinks.ID]` table in `example`, and for a sink
    /// the first ID in its `inputs`.
    fn ids(example: &str, kind: ComponentKind) -> (String, Option<String>) {
        let header = format!("[{}.", kind.table());
        let id = example
            .lines()
            .find_map(|l| l.trim().strip_prefix(&header)?.strip_suffix(']'))
            .unwrap_or_else(|| panic!("the example has no {header}ID] table:\n{example}"))
            .to_owned();
        let input = example.lines().find_map(|l| {
            let list = l.trim().strip_prefix("inputs")?.trim_start().strip_prefix('=')?;
            list.split('"').nth(1).map(str::to_owned)
        });
        (id, input)
    }

    #[test]
    fn every_component_loads_its_own_example() {
        let components = registered_components();
        let names: Vec<&str> = components.iter().map(|d| d.type_name).collect();
        // The scaffold's test reads this line to see its new component linked.
        println!("registered components: {}", names.join(" "));
        for expected in ["stdin", "demo", "file", "console", "kafka"] {
            assert!(names.contains(&expected), "{expected} is not linked: {names:?}");
        }
        for d in components {
            let (id, input) = ids(d.example, d.kind);
            // Complete the example with the other end of a pipeline.
            let text = match d.kind {
                ComponentKind::Source => {
                    format!(
                        "{}\n[sinks.check_out]\ntype = \"console\"\ninputs = [\"{id}\"]\n",
                        d.example
                    )
                }
                ComponentKind::Sink => {
                    let input = input.unwrap_or_else(|| panic!("sink {} example has no inputs", d.type_name));
                    format!("[sources.{input}]\ntype = \"stdin\"\n\n{}", d.example)
                }
            };
            let env = |name: &str| Some(format!("example-{name}"));
            let config = ferry_config::load_str(Path::new("example.toml"), &text, &env).unwrap_or_else(|e| {
                panic!(
                    "{} {}'s example does not load:\n{e}\n{text}",
                    d.kind.as_str(),
                    d.type_name
                )
            });
            let found = match d.kind {
                ComponentKind::Source => config.sources.iter().any(|s| s.id == id),
                ComponentKind::Sink => config.sinks.iter().any(|s| s.id == id),
            };
            assert!(
                found,
                "{} {}: `{id}` missing after loading",
                d.kind.as_str(),
                d.type_name
            );
        }
    }
}

/// The build script's logic, tested as part of the runner.
#[cfg(test)]
#[path = "../build/components.rs"]
mod build_components;
