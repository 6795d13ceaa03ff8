"""RMNet replication workflow: every experiment to results/<results_name>/**.csv, every table and figure
regenerated from those CSVs alone into figures/<results_name>/ (results_name: a config key; the paths
below it are stated once, in replication/layout.py, which the verdicts read too).

    snakemake --cores 8                                   # embedded default (CPU, minutes)
    snakemake --cores 2 --configfile config/evidence.yaml # the evidence profile (CPU, about 75 min)
    snakemake --cores 8 --configfile config/paper.yaml    # the paper's settings (GPUs, days)
    snakemake --workflow-profile profiles/slurm --configfile config/paper.yaml   # on SLURM (README)
    snakemake --report report.html                        # self-contained HTML report

The stages live in workflow/rules/ (counts, throughput, training, experiments, report, claims); every
job is a shell step `python -m replication.workflow_steps <step> ...` that logs to logs/<results_name>/.
"""

from snakemake.utils import min_version, validate

min_version("8.0")


# The embedded default, only when no --configfile is given: a profile's config file (evidence.yaml,
# paper.yaml) is complete on its own, and merging it over the embedded one would leave the embedded
# widths and epochs in every run the profile does not spell out. Overlays name both files, as CI does:
# --configfile config/config.yaml config/ci.yaml.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/counts.smk"
include: "workflow/rules/throughput.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/experiments.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/claims.smk"


rule all:
    input:
        RESULT_FILES,
        FIGURE_FILES,
        TABLE_FILES,
