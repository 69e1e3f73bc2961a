// Command hanode runs a node of a hanode cluster: it serves an HTTP
// application whose sessions survive the death of the node, and an admin
// API. See README.md for the settings and the sub-commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/hanode/hanode/httpsession/hanode"
	"github.com/hanode/hanode/multicast"
	"github.com/urfave/cli/v2"
)

// version, when set at build time with -ldflags "-X main.version=v1.2.3",
// overrides the version of internal/buildinfo (which the release script
// sets, with the commit).
var version = ""

func buildVersion() string { return buildInfo().Version }

func main() {
	os.Exit(runMain(os.Args, os.Stdout, os.Stderr))
}

// runMain runs the CLI and returns the process exit code: 0 success,
// 1 runtime failure, 2 usage or configuration error.
func runMain(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	if err := app.Run(args); err != nil {
		fmt.Fprintf(stderr, "hanode: %v\n", err)
		if errors.Is(err, hanode.ErrConfig) || errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}

var errUsage = errors.New("usage")

// Config is the effective configuration of a node: the settings of
// `hanode run`, resolved by the embedding package.
type Config = hanode.Config

// ErrConfig is wrapped by every configuration error.
var ErrConfig = hanode.ErrConfig

func configFlag() cli.Flag {
	return &cli.StringFlag{Name: "config", Aliases: []string{"c"}, EnvVars: []string{"HANODE_CONFIG"}, Usage: "config `file` (TOML: key = value lines, keys are the flag names)"}
}

// settingFlags returns one flag per setting. They have no EnvVars: the
// environment is read by hanode.Load so that `config check` can tell a
// flag from an environment variable.
func settingFlags(only ...string) []cli.Flag {
	var fs []cli.Flag
	for _, o := range hanode.Settings() {
		if len(only) > 0 && !contains(only, o.Name) {
			continue
		}
		usage := o.Usage + " [" + o.Env + "]"
		if o.Bool {
			def, _ := strconv.ParseBool(o.Default)
			fs = append(fs, &cli.BoolFlag{Name: o.Name, Usage: usage, Value: def})
			continue
		}
		fs = append(fs, &cli.StringFlag{Name: o.Name, Usage: usage, DefaultText: o.Default})
	}
	return fs
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// configFromCLI resolves the settings of a command.
func configFromCLI(c *cli.Context) (*Config, error) {
	flags := map[string]string{}
	for _, o := range hanode.Settings() {
		if !c.IsSet(o.Name) {
			continue
		}
		if o.Bool {
			flags[o.Name] = strconv.FormatBool(c.Bool(o.Name))
		} else {
			flags[o.Name] = c.String(o.Name)
		}
	}
	return hanode.Load(hanode.Sources{Flags: flags, Getenv: os.Getenv, File: c.String("config")})
}

func newApp(stdout, stderr io.Writer) *cli.App {
	runFlags := append([]cli.Flag{configFlag()}, settingFlags()...)
	clientFlags := append([]cli.Flag{configFlag()}, settingFlags("admin", "admin-token", "admin-token-file")...)
	clientFlags = append(clientFlags, &cli.BoolFlag{Name: "json", Usage: "print the raw JSON answer"})
	return &cli.App{
		Name:                 "hanode",
		Usage:                "keep HTTP sessions alive when a web server dies",
		Version:              buildVersion(),
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		HideVersion:          true,
		ExitErrHandler:       func(*cli.Context, error) {}, // runMain reports errors
		Commands: []*cli.Command{
			{
				Name:  "run",
				Usage: "run a node: the demo application on --listen and the admin API on --admin",
				Flags: runFlags,
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return fmt.Errorf("%w: unexpected argument %q (flags go before arguments; run takes none)", errUsage, c.Args().First())
					}
					cfg, err := configFromCLI(c)
					if err != nil {
						return err
					}
					if err := cfg.Validate(); err != nil {
						return err
					}
					// SIGHUP reloads the key file (HA on) or is logged (HA
					// off); until that handler is in place it is ignored, so
					// that it never ends the process.
					signal.Ignore(syscall.SIGHUP)
					ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
					defer stop()
					return run(ctx, cfg, stderr)
				},
			},
			{
				Name:  "config",
				Usage: "inspect the configuration",
				Subcommands: []*cli.Command{{
					Name:  "check",
					Usage: "validate the settings and print the effective ones with their source (flag, env, file, default)",
					Flags: runFlags,
					Action: func(c *cli.Context) error {
						cfg, err := configFromCLI(c)
						if err != nil {
							return err
						}
						cfg.WriteEffective(stdout)
						if err := cfg.Validate(); err != nil {
							return err
						}
						if cfg.HA {
							if _, err := multicast.LoadKeyFile(cfg.KeyFile); err != nil {
								_, where := cfg.Source("key-file")
								return fmt.Errorf("%w: key-file (%s): %v", ErrConfig, where, err)
							}
						}
						if !cfg.AdminIsLoopback() && cfg.AdminToken == "" {
							fmt.Fprintf(stdout, "# warning: admin %s is not loopback and no admin-token is set: session listing and kill are refused\n", cfg.Admin)
						}
						fmt.Fprintln(stdout, "# configuration OK")
						return nil
					},
				}},
			},
			keygenCommand(stdout),
			probeCommand(stdout, stderr),
			versionCommand(stdout),
			{
				Name:   "status",
				Usage:  "print a node's status (GET /status of its admin API); --wait follows a joining node's state transfer until it is ready",
				Flags:  append(append([]cli.Flag{}, clientFlags...), waitFlags...),
				Action: statusAction(stdout),
			},
			{
				Name:   "members",
				Usage:  "print the members a node sees",
				Flags:  clientFlags,
				Action: func(c *cli.Context) error { return clientGet(c, stdout, "/members", printMembers) },
			},
			{
				Name:  "sessions",
				Usage: "list, show or kill sessions",
				Subcommands: []*cli.Command{
					{
						Name: "list", Usage: "list sessions (hashed IDs unless authenticated with the admin token)", Flags: clientFlags,
						Action: func(c *cli.Context) error { return clientGet(c, stdout, "/sessions", printSessions) },
					},
					{
						Name: "show", Usage: "show one session: hanode sessions show ID-OR-HASH", ArgsUsage: "ID-OR-HASH", Flags: clientFlags,
						Action: func(c *cli.Context) error {
							if c.NArg() != 1 {
								return fmt.Errorf("%w: sessions show takes one session ID or hash", errUsage)
							}
							return clientGet(c, stdout, "/sessions/"+pathEscape(c.Args().First()), nil)
						},
					},
					{
						Name: "kill", Usage: "destroy a session cluster-wide: hanode sessions kill ID-OR-HASH", ArgsUsage: "ID-OR-HASH", Flags: clientFlags,
						Action: func(c *cli.Context) error {
							if c.NArg() != 1 {
								return fmt.Errorf("%w: sessions kill takes one session ID or hash", errUsage)
							}
							return clientDo(c, stdout, "DELETE", "/sessions/"+pathEscape(c.Args().First()))
						},
					},
				},
			},
			{
				Name:   "drain",
				Usage:  "make a node unready (readyz 503) so the load balancer moves its users; sessions stay; --wait follows until no request is in flight and every delta is sent",
				Flags:  append(append([]cli.Flag{}, clientFlags...), waitFlags...),
				Action: drainAction(stdout),
			},
		},
	}
}
