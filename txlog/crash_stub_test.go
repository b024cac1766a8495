package txlog

const crashChildEnv = "TXLOG_CRASH_CHILD"

func crashChild() {}
