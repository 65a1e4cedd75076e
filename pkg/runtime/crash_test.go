package runtime

const agentHelperEnv = "BERTH_RUNTIME_TEST_AGENT"

func runAgentHelper() int { return 2 }
