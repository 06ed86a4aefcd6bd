package main

import "github.com/spf13/cobra"

func newAppCmd() *cobra.Command {
	c := &cobra.Command{Use: "app", Short: "Validate, render, sign, verify and address app manifests"}
	c.AddCommand(newAppValidateCmd())
	c.AddCommand(newAppRenderCmd())
	c.AddCommand(newAppCIDCmd())
	c.AddCommand(newAppSignCmd())
	c.AddCommand(newAppVerifyCmd())
	c.AddCommand(newAppTestCmd())
	return c
}
