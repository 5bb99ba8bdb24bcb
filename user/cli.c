/* sproxy-bpf's command line: the commands (attach, check, run, tproxy;
 * rules and doctor handed on), getopt over the options, the --config glue,
 * and the reading again for a reload.  Every bad command line ends here
 * with exit status 2, before anything is loaded. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>
#include <event2/event.h>

#include "cli.h"
#include "cli_int.h"
#include "config.h"
#include "daemon.h"
#include "rules.h"

struct config_ctx {
	struct options *o;
};

static int config_line(void *ctx, const char *name, const char *value, const char *origin,
		       char *err, size_t errlen)
{
	struct options *o = ((struct config_ctx *)ctx)->o;
	int rc;

	if (strcmp(name, "config") == 0)
		return cli_usage_error(err, errlen, "a config file cannot name another");
	o->origin = origin;
	rc = cli_apply(o, name, value, err, errlen);
	o->origin = NULL;
	return rc;
}

int cli_apply_config(struct options *o, const char *path, char *err, size_t errlen)
{
	struct config_ctx ctx = { o };

	return config_load(path, config_line, &ctx, err, errlen) < 0 ? BAD_NUMBER : 0;
}

int cli_apply_config_mem(struct options *o, const char *name, const char *text,
			 size_t len, char *err, size_t errlen)
{
	struct config_ctx ctx = { o };

	return config_load_mem(name, text, len, config_line, &ctx, err, errlen);
}

/* The names a rule's target may take besides DIRECT and REJECT: the
 * upstreams the options define.  None yet. */
static int upstream_names(const struct options *o, const char **names, int max)
{
	int n = 0;

	for (int i = 0; i < o->n_upstream && n < max; i++)
		names[n++] = o->upstream[i].name;
	return n;
}

int cli_finish(struct options *o, char *err, size_t errlen)
{
	const char *names[64];
	int n = upstream_names(o, names, 64);

	if (o->proxy_cgroup && !o->handoff_to.ss_family)
		return cli_usage_error(err, errlen, "--proxy-cgroup goes with --to");
	if (!o->rules && !(o->rules = rules_new()))
		return cli_usage_error(err, errlen, "out of memory");
	return rules_compile(o->rules, names, n, err, errlen) < 0 ? -1 : 0;
}

/* err's lines, each as one message. */
static void print_err(const char *err, int hint)
{
	for (const char *p = err, *nl; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		fprintf(stderr, "sproxy-bpf: %.*s\n", nl ? (int)(nl - p) : (int)strlen(p), p);
		if (!nl)
			break;
	}
	if (hint)
		fprintf(stderr, "Try 'sproxy-bpf --help'.\n");
}


/* The libraries it was built with, and those it runs with when they differ. */
static void print_version(void)
{
	char bpf[24];

	snprintf(bpf, sizeof(bpf), "v%d.%d", LIBBPF_MAJOR_VERSION, LIBBPF_MINOR_VERSION);
	printf("sproxy-bpf %s (built with libbpf %s, libevent %s", SPROXY_VERSION, bpf,
	       LIBEVENT_VERSION);
	if (strcmp(bpf, libbpf_version_string()) || strcmp(LIBEVENT_VERSION, event_get_version()))
		printf("; running with libbpf %s, libevent %s", libbpf_version_string(),
		       event_get_version());
	puts(")");
}

static void parse(int argc, char **argv, struct options *o)
{
	char err[4096];
	int c, rc;

	cli_defaults(o);
	/* run: options end at CMD, whose own options are its own. */
	while ((c = getopt_long(argc, argv, cli_is_run ? "+l:b:vhV" : "l:b:vhV",
				cli_long_opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(cli_usage_text, stdout);
			exit(0);
		case 'V':
			print_version();
			exit(0);
		case '?':
		case ':':
			fprintf(stderr, "Try 'sproxy-bpf --help'.\n");
			exit(EXIT_USAGE);
		}
		rc = cli_apply_opt(o, c, optarg, err, sizeof(err));
		if (rc < 0) {
			print_err(err, rc == BAD_USAGE);
			exit(EXIT_USAGE);
		}
	}
}

/* The whole command line: the command, its options, its argument. */
void cli_parse(int argc, char **argv, struct options *o)
{
	char err[4096];
	int check, tproxy;

	if (argc > 1 && argv[1][0] == '-') {
		parse(argc, argv, o);
		fputs(cli_usage_text, stderr);
		exit(EXIT_USAGE);
	}
	if (argc < 2) {
		fputs(cli_usage_text, stderr);
		exit(EXIT_USAGE);
	}
	if (strcmp(argv[1], "rules") == 0)
		exit(cli_rules(argc, argv));
	if (strcmp(argv[1], "doctor") == 0)
		exit(cli_doctor(argc, argv));
	tproxy = strcmp(argv[1], "tproxy") == 0;
	check = strcmp(argv[1], "check") == 0;
	cli_is_run = strcmp(argv[1], "run") == 0;
	if (!check && !cli_is_run && !tproxy && strcmp(argv[1], "attach") != 0) {
		fprintf(stderr, "sproxy-bpf: unknown command '%s'\nTry 'sproxy-bpf --help'.\n",
			argv[1]);
		exit(EXIT_USAGE);
	}
	optind = 2;
	parse(argc, argv, o);
	if (cli_is_run) {
		if (optind >= argc) {
			fprintf(stderr, "sproxy-bpf: run needs a command: sproxy-bpf run "
				"[OPTION]... -- CMD [ARG]...\nTry 'sproxy-bpf --help'.\n");
			exit(EXIT_USAGE);
		}
		o->run_argv = argv + optind;
		optind = argc - 1;      /* CMD is no CGROUP */
	}
	if (tproxy && optind < argc) {
		fprintf(stderr, "sproxy-bpf: tproxy takes no argument, not '%s'\n"
			"Try 'sproxy-bpf --help'.\n", argv[optind]);
		exit(EXIT_USAGE);
	}
	o->tproxy = tproxy;
	if (tproxy && (o->handoff_to.ss_family || o->proxy_cgroup)) {
		fprintf(stderr, "sproxy-bpf: --to and --proxy-cgroup are options of attach "
			"and run\nTry 'sproxy-bpf --help'.\n");
		exit(EXIT_USAGE);
	}
	if (tproxy && o->pin_dir) {
		fprintf(stderr, "sproxy-bpf: --pin is an option of attach (tproxy loads "
			"no BPF)\nTry 'sproxy-bpf --help'.\n");
		exit(EXIT_USAGE);
	}
	if (!tproxy && (optind < argc - 1 || (!check && optind != argc - 1))) {
		if (optind >= argc)
			fprintf(stderr, "sproxy-bpf: attach needs a CGROUP\n");
		else
			fprintf(stderr, "sproxy-bpf: unexpected argument '%s'\n",
				argv[optind + 1]);
		fprintf(stderr, "Try 'sproxy-bpf --help'.\n");
		exit(EXIT_USAGE);
	}
	o->cgroup = optind < argc && !cli_is_run ? argv[optind] : NULL;
	if (cli_finish(o, err, sizeof(err)) < 0) {
		print_err(err, 0);
		exit(EXIT_USAGE);
	}
	if (check) {
		puts("ok");
		exit(0);
	}
}

int cli_reparse(int argc, char **argv, struct options *o, char *err, size_t errlen)
{
	int c, saved_opterr = opterr;

	memset(o, 0, sizeof(*o));
	cli_defaults(o);
	o->resolve_later = 1;
	if (argc < 2)
		return cli_usage_error(err, errlen, "no command line to read again");
	/* argv[1] (the command) stands for the program's name; optind 0 starts
	 * getopt afresh. */
	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc - 1, argv + 1, "l:b:vhV", cli_long_opts, NULL)) != -1) {
		if (c == 'h' || c == 'V' || c == '?' || c == ':' ||
		    cli_apply_opt(o, c, optarg, err, errlen) < 0) {
			if (c == 'h' || c == 'V' || c == '?' || c == ':')
				cli_usage_error(err, errlen, "the command line no longer parses");
			opterr = saved_opterr;
			cli_options_free(o);
			return -1;
		}
	}
	opterr = saved_opterr;
	o->cgroup = optind < argc - 1 ? argv[1 + optind] : NULL;
	if (cli_finish(o, err, errlen) < 0) {
		cli_options_free(o);
		return -1;
	}
	return 0;
}

char **cli_copy_args(int argc, char **argv)
{
	char **copy = calloc((size_t)argc + 1, sizeof(*copy));

	for (int i = 0; copy && i < argc; i++)
		if (!(copy[i] = strdup(argv[i]))) {
			cli_free_args(copy);
			return NULL;
		}
	return copy;
}

void cli_free_args(char **args)
{
	for (int i = 0; args && args[i]; i++)
		free(args[i]);
	free(args);
}

void cli_options_free(struct options *o)
{
	for (int i = 0; i < o->n_owned; i++)
		free(o->owned[i]);
	free(o->owned);
	o->owned = NULL;
	o->n_owned = 0;
	rules_unref(o->rules);
	o->rules = NULL;
}
