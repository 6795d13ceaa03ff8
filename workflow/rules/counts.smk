# Counts and exactness: params / MACs of every table row against the paper, and the RM conversions
# checked to float tolerance. Untrained models, no data.


rule counts:
    output:
        counts=result(layout.MODEL_COUNTS),
        comparison=result(layout.COUNTS_VS_PAPER),
        table=f"{FIGURES}/tables/counts_vs_paper.md",
    log:
        f"{LOGS}/counts.log",
    benchmark:
        f"{BENCH}/counts.tsv"
    conda:
        "../../environment.yml"
    params:
        step=STEP,
        args=lambda wildcards, output: step_args(counts_csv=output.counts, comparison_csv=output.comparison,
                                                 table=output.table),
    shell:
        "{params.step} counts {params.args} > {log} 2>&1"


rule exactness:
    output:
        result(layout.EXACTNESS),
    log:
        f"{LOGS}/exactness.log",
    conda:
        "../../environment.yml"
    params:
        step=STEP,
        args=lambda wildcards, output: step_args(output=output[0], profile=NAME),
    shell:
        "{params.step} exactness {params.args} > {log} 2>&1"
