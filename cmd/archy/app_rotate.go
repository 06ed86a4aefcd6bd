package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/internal/atomicfile"
	"github.com/archy-node/archy/registry"
)

func newAppRotateCmd() *cobra.Command {
	var keyFile, to, out string
	c := &cobra.Command{
		Use:   "rotate APP-ID --key OLD-KEYFILE --to DID|KEYFILE [--out FILE]",
		Short: "Sign a rotation statement: the app is published by another DID from now on",
		Long: `Sign, with the app's current publisher key, a rotation statement (a DSSE
envelope of type ` + registry.RotationPayloadType + `) saying that
APP-ID is published by the DID --to from now on. A node that installed the
app from the old DID accepts the new DID's releases as updates only with
this statement (archy app install --rotation FILE); without it they are a
different app. The statement goes to stdout unless --out names a file.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" || to == "" {
				return fmt.Errorf("--key (the current publisher's key file) and --to (the new publisher's DID or key file) are required")
			}
			key, err := did.LoadKey(keyFile)
			if err != nil {
				return err
			}
			next, err := keyDID(to)
			if err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			env, err := registry.SignRotation(args[0], key, next, time.Now())
			if err != nil {
				return err
			}
			data, err := env.Marshal()
			if err != nil {
				return fmt.Errorf("rotate %s: %w", args[0], err)
			}
			data = append(data, '\n')
			if out == "" || out == "-" {
				_, err := cmd.OutOrStdout().Write(data)
				return err
			}
			if err := atomicfile.Write(out, data, 0o644); err != nil {
				return fmt.Errorf("write %s: %w", out, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s moves from %s to %s: %s\n", args[0], key.DID(), next, out)
			return nil
		},
	}
	c.Flags().StringVar(&keyFile, "key", "", "the app's current publisher key file")
	c.Flags().StringVar(&to, "to", "", "the new publisher: a did:key or its key file")
	c.Flags().StringVar(&out, "out", "", "where to write the statement (default stdout)")
	return c
}
