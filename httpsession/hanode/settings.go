package hanode

import (
	"flag"
	"os"
	"runtime/debug"
	"strconv"
)

// Setting describes one setting, as `hanode run --help` and
// `hanode config check` show it.
type Setting struct {
	// Name is the flag name and the config file key: "key-file".
	Name string
	// Env is the environment variable: "HANODE_KEY_FILE".
	Env string
	// Default is the value when no source sets it ("" for none).
	Default string
	// Usage is a one-line description.
	Usage string
	// Bool is true for a boolean setting, a flag that takes no value
	// (--ha, --ha=false).
	Bool bool
	// List is true for a list setting: "a,b" in a flag or environment
	// variable, "a,b" or ["a", "b"] in the config file.
	List bool
	// Choices lists the accepted values of an enumerated setting.
	Choices []string
	// DaemonOnly is true for a setting only `hanode run` uses (its demo
	// application's); AddFlags leaves it out.
	DaemonOnly bool
}

// Settings returns every setting, in the order `hanode config check`
// prints them.
func Settings() []Setting {
	out := make([]Setting, 0, len(options))
	for _, o := range options {
		out = append(out, Setting{
			Name: o.name, Env: envName(o.name), Default: o.def, Usage: o.usage,
			Bool: o.kind == kindBool, List: o.kind == kindList,
			Choices: append([]string(nil), o.choices...), DaemonOnly: o.daemon,
		})
	}
	return out
}

// EnvName returns the environment variable of a setting: HANODE_KEY_FILE
// for key-file.
func EnvName(setting string) string { return envName(setting) }

// Sources names where Load reads the settings from. The first source
// that sets a setting wins: Flags, then the environment, then File, then
// the default.
type Sources struct {
	// Flags holds the settings given on the command line, by name
	// ("key-file"), as the user wrote them ("true" for a boolean flag
	// given without a value). Default: none.
	Flags map[string]string
	// Getenv reads an environment variable. Default: os.Getenv.
	Getenv func(string) string
	// File is the config file to read; "" reads none. Default: none.
	File string
}

// Load resolves every setting from src by precedence flag > environment
// (HANODE_*) > config file > default, and parses each. An error wraps
// ErrConfig and names where each bad value came from (--ttl, HANODE_TTL,
// /etc/hanode/hanode.toml:12). Load does not check the settings against
// each other: Config.Validate does, and Start calls it.
func Load(src Sources) (*Config, error) {
	getenv := src.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	return loadConfig(flagSource(src.Flags), getenv, src.File)
}

// FromEnv resolves the settings without flags: from the HANODE_*
// environment, the config file named by HANODE_CONFIG (if set) and the
// defaults.
func FromEnv() (*Config, error) {
	return Load(Sources{File: os.Getenv("HANODE_CONFIG")})
}

// AddFlags defines on fs the flags of every setting (--ha, --node,
// --listen, ...; not the DaemonOnly ones) and --config (-c), the config
// file. Call FromFlags after fs.Parse. The flags carry no defaults of
// their own: an unset flag leaves the setting to the environment, the
// config file or the default. Like fs.Var, it panics when fs already has
// a flag of one of these names.
func AddFlags(fs *flag.FlagSet) {
	cf := &stringFlag{}
	fs.Var(cf, "config", "config file (TOML; keys are the flag names) [HANODE_CONFIG]")
	fs.Var(cf, "c", "shorthand for --config")
	for _, o := range options {
		if o.daemon {
			continue
		}
		usage := o.usage + " [" + envName(o.name) + "]"
		if o.def != "" {
			usage += " (default " + o.def + ")"
		}
		if o.kind == kindBool {
			fs.Var(&boolFlag{}, o.name, usage)
		} else {
			fs.Var(&stringFlag{}, o.name, usage)
		}
	}
}

// FromFlags resolves the settings after fs.Parse, fs having been set up
// by AddFlags: the flags given on the command line win over the HANODE_*
// environment, which wins over the config file (--config, -c or
// HANODE_CONFIG), which wins over the defaults.
func FromFlags(fs *flag.FlagSet) (*Config, error) {
	flags := map[string]string{}
	file := os.Getenv("HANODE_CONFIG")
	fs.Visit(func(f *flag.Flag) {
		switch {
		case f.Name == "config" || f.Name == "c":
			file = f.Value.String()
		default:
			if _, ok := lookupOption(f.Name); ok {
				flags[f.Name] = f.Value.String()
			}
		}
	})
	return Load(Sources{Flags: flags, File: file})
}

// stringFlag is a flag.Value that keeps the text as given.
type stringFlag struct{ s string }

func (f *stringFlag) String() string {
	if f == nil {
		return ""
	}
	return f.s
}
func (f *stringFlag) Set(s string) error { f.s = s; return nil }

// boolFlag is a flag.Value for a boolean setting: --ha alone means true.
// The text is checked by Load, which names the flag in its error.
type boolFlag struct{ s string }

func (f *boolFlag) String() string {
	if f == nil {
		return ""
	}
	return f.s
}
func (f *boolFlag) IsBoolFlag() bool { return true }
func (f *boolFlag) Set(s string) error {
	if _, err := strconv.ParseBool(s); err != nil {
		if _, err := parseBool(s); err != nil {
			return err
		}
	}
	f.s = s
	return nil
}

// version returns Version or, unset, the build's.
func (c *Config) version() string {
	if c.Version != "" {
		return c.Version
	}
	return BuildVersion()
}

// BuildVersion returns the main module's version from the program's build
// info: a release tag, "devel-" and the commit for a build from a
// checkout, or "devel".
func BuildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 && (v == "" || v == "(devel)") {
				v = "devel-" + s.Value[:12]
			}
		}
		if v != "" && v != "(devel)" {
			return v
		}
	}
	return "devel"
}
