/*
 * cmd.h — the subcommands. Each takes argv with argv[0] = its own name and
 * the configuration loaded from the environment, and returns an exit code
 * (cli.h).
 */
#ifndef CRU_CMD_H
#define CRU_CMD_H

#include "config.h"

#define CRU_VERSION "0.1.0"

int cmd_init(int argc, char **argv, struct config *cfg);
int cmd_worker(int argc, char **argv, struct config *cfg);
int cmd_submit(int argc, char **argv, struct config *cfg);
int cmd_status(int argc, char **argv, struct config *cfg);
int cmd_watch(int argc, char **argv, struct config *cfg);
int cmd_jobs(int argc, char **argv, struct config *cfg);
int cmd_cancel(int argc, char **argv, struct config *cfg);
int cmd_retry(int argc, char **argv, struct config *cfg);
int cmd_stats(int argc, char **argv, struct config *cfg);
int cmd_top(int argc, char **argv, struct config *cfg);

#endif
