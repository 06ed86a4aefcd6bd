package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// The node's settings come from one place each, in this order: a flag on
// the command line, else the environment (ARCHY_ and the flag's name in
// capitals, dashes as underscores: --upload-rate is ARCHY_UPLOAD_RATE),
// else the config file, else the flag's default. The config file is YAML
// whose keys are the flags' names, so a flag, its variable and its key can
// never disagree: --config FILE (or ARCHY_CONFIG), else
// <data>/config.yaml when it exists.

// Setting sources, as `archy node config` prints them.
const (
	fromFlag    = "flag"
	fromEnv     = "env"
	fromFile    = "file"
	fromDefault = "default"
)

// maxConfigFile bounds the config file read.
const maxConfigFile = 1 << 20

// settingsNot lists flags that are not settings (asked per run).
var settingsNot = map[string]bool{"help": true, "config": true, "json": true}

func envName(flag string) string {
	return "ARCHY_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applySettings fills every flag of fs not given on the command line from
// the environment, then from the config file, and returns where each
// setting came from. A bad key or value fails with the file and key (or
// the variable) named.
func applySettings(fs *pflag.FlagSet, configFile string) (map[string]string, error) {
	src := map[string]string{}
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || settingsNot[f.Name] {
			return
		}
		switch {
		case f.Changed:
			src[f.Name] = fromFlag
		default:
			if v, ok := os.LookupEnv(envName(f.Name)); ok {
				if serr := fs.Set(f.Name, v); serr != nil {
					err = fmt.Errorf("environment %s=%q: %w", envName(f.Name), v, serr)
					return
				}
				src[f.Name] = fromEnv
			}
		}
	})
	if err != nil {
		return nil, err
	}
	file, explicit := configFile, configFile != ""
	if !explicit {
		if file, explicit = os.LookupEnv("ARCHY_CONFIG"); !explicit {
			dir, derr := resolveDataDir(fs.Lookup("data").Value.String())
			if derr != nil {
				return nil, derr
			}
			file = filepath.Join(dir, "config.yaml")
		}
	}
	vals, err := readConfigFile(file, fs)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		err = nil
	}
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if src[k] != "" {
			continue // a flag or the environment says otherwise
		}
		if err := fs.Set(k, vals[k]); err != nil {
			return nil, fmt.Errorf("config file %s: %s: %q: %w", file, k, vals[k], err)
		}
		src[k] = fromFile + " " + file
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if !settingsNot[f.Name] && src[f.Name] == "" {
			src[f.Name] = fromDefault
		}
	})
	return src, nil
}

// readConfigFile parses file strictly: a mapping of flag names of fs to
// scalars or lists of scalars, each key once.
func readConfigFile(file string, fs *pflag.FlagSet) (map[string]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", file, err)
	}
	if len(b) > maxConfigFile {
		return nil, fmt.Errorf("config file %s: larger than %d bytes", file, maxConfigFile)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return map[string]string{}, nil // empty file
		}
		return nil, fmt.Errorf("config file %s: %w", file, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config file %s: want a mapping of setting names to values", file)
	}
	out := map[string]string{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		key := k.Value
		if fs.Lookup(key) == nil || settingsNot[key] {
			return nil, fmt.Errorf("config file %s: line %d: unknown setting %q (the settings are the flags of `archy node run`)", file, k.Line, key)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("config file %s: line %d: %s given twice", file, k.Line, key)
		}
		switch v.Kind {
		case yaml.ScalarNode:
			out[key] = v.Value
		case yaml.SequenceNode:
			var items []string
			for _, it := range v.Content {
				if it.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("config file %s: line %d: %s: want a list of plain values", file, it.Line, key)
				}
				if strings.Contains(it.Value, ",") {
					return nil, fmt.Errorf("config file %s: line %d: %s: %q: a value may not hold a comma", file, it.Line, key, it.Value)
				}
				items = append(items, it.Value)
			}
			out[key] = strings.Join(items, ",")
		default:
			return nil, fmt.Errorf("config file %s: line %d: %s: want a value or a list", file, v.Line, key)
		}
	}
	return out, nil
}

// settingValue is a flag's value as the config file would hold it.
func settingValue(f *pflag.Flag) any {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		l := sv.GetSlice()
		if l == nil {
			l = []string{}
		}
		return l
	}
	return f.Value.String()
}

// newNodeConfigCmd prints the settings `archy node run` would run with,
// given the same flags: the run command's own flag set, so the two never
// disagree.
func newNodeConfigCmd() *cobra.Command {
	c := newNodeRunCmd()
	c.Use = "config [node run flags]"
	c.Short = "Print the node's effective settings and where each comes from (flag, env, file, default)"
	c.Long = `Print the settings archy node run would use with the same flags: each
setting's value and its source. A setting comes from its flag, else the
environment (ARCHY_ and the flag's name in capitals, dashes as underscores),
else the config file (--config, $ARCHY_CONFIG, else <data>/config.yaml when
it exists: YAML, keys are the flags' names), else its default.`
	configFile := c.Flags().Lookup("config")
	var asJSON bool
	c.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		src, err := applySettings(cmd.Flags(), configFile.Value.String())
		if err != nil {
			return err
		}
		type setting struct {
			Name   string `json:"name"`
			Value  any    `json:"value"`
			Source string `json:"source"`
		}
		var out []setting
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if !settingsNot[f.Name] {
				out = append(out, setting{f.Name, settingValue(f), src[f.Name]})
			}
		})
		if asJSON {
			return writeJSON(cmd, out)
		}
		w := cmd.OutOrStdout()
		for _, s := range out {
			v := fmt.Sprint(s.Value)
			if l, ok := s.Value.([]string); ok {
				v = "[" + strings.Join(l, ", ") + "]"
			}
			fmt.Fprintf(w, "%-16s %-40s %s\n", s.Name, v, s.Source)
		}
		return nil
	}
	return c
}
