//! One registration point per component.
//!
//! [`register_source!`](crate::register_source) and [`register_sink!`](crate::register_sink)
//! wrap a component's `impl SourceConfig` / `impl SinkConfig` block. From the one `name` they
//! make the `typetag` registration (what `type = "..."` selects) and the `inventory`
//! descriptor (`ferry list`), so the two can never disagree; for sinks they also write the
//! `inputs`, `buffer` and `healthcheck_enabled` accessors every sink needs. The component's
//! crate depends on `ferry-core` only: `typetag` and `inventory` come through here.

#[doc(hidden)]
pub mod __private {
    pub use inventory;
    pub use typetag;
}

/// Registers a source under `name`, with a one-line `description` and a complete TOML
/// `example` of its table, around its `impl SourceConfig` block:
///
/// ```ignore
/// ferry_core::register_source! {
///     name: "stdin",
///     description: "Reads standard input, one event per line.",
///     example: "[sources.in]\ntype = \"stdin\"\n",
///     impl SourceConfig for StdinSourceConfig {
///         fn build(&self, cx: SourceContext) -> Result<SourceTask, BoxError> { todo!() }
///     }
/// }
/// ```
#[macro_export]
macro_rules! register_source {
    (
        name: $name:tt,
        description: $description:expr,
        example: $example:expr,
        impl SourceConfig for $config:ty { $($body:tt)* }
    ) => {
        const _: () = {
            use $crate::registration::__private::typetag;

            #[typetag::deserialize(name = $name)]
            impl $crate::SourceConfig for $config {
                $($body)*
            }

            $crate::registration::__private::inventory::submit! {
                $crate::ComponentDescriptor {
                    kind: $crate::ComponentKind::Source,
                    type_name: $name,
                    description: $description,
                    example: $example,
                }
            }
        };
    };
}

/// Registers a sink like [`register_source!`](crate::register_source) does a source. The
/// config struct must have the fields every sink has: `inputs: Vec<String>`,
/// `buffer: BufferConfig` and `healthcheck: bool`; the macro writes the accessors for them,
/// and the block holds `build` and, if needed, `validate` and `replay_dead_letters`.
#[macro_export]
macro_rules! register_sink {
    (
        name: $name:tt,
        description: $description:expr,
        example: $example:expr,
        impl SinkConfig for $config:ty { $($body:tt)* }
    ) => {
        const _: () = {
            use $crate::registration::__private::typetag;

            #[typetag::deserialize(name = $name)]
            impl $crate::SinkConfig for $config {
                fn inputs(&self) -> &[::std::string::String] {
                    &self.inputs
                }

                fn buffer(&self) -> &$crate::BufferConfig {
                    &self.buffer
                }

                fn healthcheck_enabled(&self) -> bool {
                    self.healthcheck
                }

                $($body)*
            }

            $crate::registration::__private::inventory::submit! {
                $crate::ComponentDescriptor {
                    kind: $crate::ComponentKind::Sink,
                    type_name: $name,
                    description: $description,
                    example: $example,
                }
            }
        };
    };
}
