package main

import "github.com/spf13/cobra"

func newAppCmd() *cobra.Command {
	c := &cobra.Command{Use: "app", Short: "Validate, render, sign, verify, address, publish and list app manifests"}
	c.AddCommand(newAppValidateCmd())
	c.AddCommand(newAppRenderCmd())
	c.AddCommand(newAppCIDCmd())
	c.AddCommand(newAppSignCmd())
	c.AddCommand(newAppVerifyCmd())
	c.AddCommand(newAppPublishCmd(), newAppWithdrawCmd(), newAppListCmd())
	c.AddCommand(newAppTestCmd(), newAppInstallCmd(), newAppUninstallCmd())
	c.AddCommand(newAppRotateCmd())
	return c
}
