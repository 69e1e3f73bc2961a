package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hanode/hanode/multicast"
	"github.com/urfave/cli/v2"
)

// keygenCommand prints a new key file, writes it with -o, or prints one
// key line for a rotation (--id).
func keygenCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "keygen",
		Usage: "make a new cluster key file: -o FILE writes it with mode 600 (the same file on every node), else it goes to stdout; with --id, one key line to add to an existing file (key rotation)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the key file to `FILE`, created with mode 600 (never readable by others, not even briefly); refuses an existing file unless --force"},
			&cli.BoolFlag{Name: "force", Usage: "with -o: replace an existing file (atomically, by a new 600 file renamed over it)"},
			&cli.UintFlag{Name: "id", Usage: "print only a `key line` with this id (1-255), to append to an existing key file"},
			&cli.BoolFlag{Name: "no-primary", Usage: "with --id: do not mark the key primary (step 1 of a rotation: accepted, not used to send)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("%w: unexpected argument %q (keygen -o FILE writes a file)", errUsage, c.Args().First())
			}
			out := c.String("output")
			if c.Bool("force") && out == "" {
				return fmt.Errorf("%w: keygen --force needs -o FILE", errUsage)
			}
			if c.IsSet("id") || c.Bool("no-primary") {
				if out != "" {
					return fmt.Errorf("%w: keygen --id prints a line to append: hanode keygen --id N >> FILE (appending keeps the file's mode)", errUsage)
				}
				id := c.Uint("id")
				if id < 1 || id > 255 {
					return fmt.Errorf("%w: keygen --id must be 1-255", errUsage)
				}
				line, err := multicast.GenerateKeyLine(uint8(id), !c.Bool("no-primary"))
				if err != nil {
					return err
				}
				_, err = io.WriteString(stdout, line)
				return err
			}
			kf, err := multicast.GenerateKeyFile()
			if err != nil {
				return err
			}
			if out == "" {
				_, err = io.WriteString(stdout, kf)
				return err
			}
			if err := writeKeyFile(out, []byte(kf), c.Bool("force")); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "wrote %s (mode 600); copy it to every node (same owner and mode), then: hanode config check\n", out)
			return nil
		},
	}
}

// errKeyFileExists reports an -o file that exists without --force.
var errKeyFileExists = errors.New("key file exists")

// writeKeyFile writes data to path with mode 0600. The file is created
// with O_EXCL and mode 0600, so no other user can open it at any moment;
// with force an existing path is replaced by renaming a new file created
// the same way in its directory over it (readers see the old or the new
// key file, never a partial one). The data is synced before the file
// takes its name.
func writeKeyFile(path string, data []byte, force bool) error {
	target := path
	if force {
		dir := filepath.Dir(path)
		tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // O_EXCL, 0600
		if err != nil {
			return err
		}
		target = tmp.Name()
		tmp.Close()
		// Reopen below like a new file; CreateTemp already made it 0600.
		if err := fillKeyFile(target, data, os.O_WRONLY|os.O_TRUNC); err != nil {
			os.Remove(target)
			return err
		}
		if err := os.Rename(target, path); err != nil {
			os.Remove(target)
			return err
		}
		return syncDir(dir)
	}
	if err := fillKeyFile(target, data, os.O_WRONLY|os.O_CREATE|os.O_EXCL); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w: %s (keep it, or replace it with --force; every node needs the same file)", errKeyFileExists, path)
		}
		return err
	}
	return syncDir(filepath.Dir(path))
}

// fillKeyFile opens path with flag and mode 0600, forces the mode to
// exactly 0600 (a umask can only remove bits), writes data and syncs. On
// an error after creating the file, it removes it.
func fillKeyFile(path string, data []byte, flag int) error {
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return err
	}
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	_ = d.Sync() // best effort: some file systems refuse to sync a directory
	return nil
}
