# Verdicts: every claim of the ledger (replication/paper/claims.yaml) judged from this profile's CSVs.


rule claims:
    input:
        RESULT_FILES,
        result(layout.COUNTS_VS_PAPER),
        "replication/paper/claims.yaml",
    output:
        csv=result(layout.CLAIMS),
        table=report(f"{FIGURES}/tables/claims.md", category="Claims", caption="../report/claims.rst"),
    log:
        f"{LOGS}/claims.log",
    conda:
        "../../environment.yml"
    params:
        step=STEP,
        args=lambda wildcards, output: step_args(results_dir=RESULTS, config=config, csv=output.csv,
                                                 table=output.table),
    shell:
        "{params.step} claims {params.args} > {log} 2>&1"
