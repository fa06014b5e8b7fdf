/** The offline tools' command lines: one positional argument (an artifact directory) and `--name value` options. */
export interface CommandLine {
  /** The first argument that is neither an option nor an option's value. */
  positional: string | undefined;
  /** An option's value, or `fallback` when the option is absent. */
  option(name: string, fallback: string): string;
  /** Whether a valueless option is present. */
  flag(name: string): boolean;
}

/** Read `argv`; `valued` names the options that take a value, so their values are not taken for the positional argument. */
export function commandLine(argv: readonly string[], valued: readonly string[]): CommandLine {
  const values = new Set(valued.map((o) => argv.indexOf(o) + 1).filter((i) => i > 0));
  return {
    positional: argv.find((a, i) => !a.startsWith('--') && !values.has(i)),
    option: (name, fallback) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : fallback),
    flag: (name) => argv.includes(name),
  };
}
