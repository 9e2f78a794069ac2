package main

import (
	"github.com/spf13/cobra"
)

// newRootCommand builds the whole command tree. Tests call it with SetArgs.
func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "vigil",
		Short: "CCTV recording, retention and access audit",
		Long: `vigil records district cameras on motion to object storage, destroys footage
after at most seven days unless a judicial hold preserves it, and logs every
viewing for auditors.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newAgentCommand(),
		newCameraSimCommand(),
		newMotionCommand(),
		newRecordingsCommand(),
		newDemoCommand(),
		newCentralCommand(),
		newLoginCommand(),
		newLogoutCommand(),
		newUserCommand(),
		newAgentsCommand(),
		newAuditCommand(),
		newHoldCommand(),
		newRetentionCommand(),
	)
	return root
}
