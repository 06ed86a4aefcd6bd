package main

import "github.com/spf13/cobra"

func newAppCmd() *cobra.Command {
	c := &cobra.Command{Use: "app", Short: "Validate, render, sign, verify and address app manifests"}
	c.AddCommand(newAppRenderCmd())
	return c
}
