import glob

# Verdicts: every claim of the ledger (replication/paper/claims.yaml) judged from this profile's CSVs.


GPU_CHECK_DIR = "results/throughput"  # scripts/gpu-check.sh writes gpu-<device>.csv here


rule claims:
    input:
        RESULT_FILES,
        sorted(glob.glob(f"{GPU_CHECK_DIR}/gpu-*.csv")),  # a GPU speed verdict beside each CPU one
        f"{RESULTS}/counts/counts_vs_paper.csv",
        "replication/paper/claims.yaml",
    output:
        csv=f"{RESULTS}/claims.csv",
        table=report(f"{FIGURES}/tables/claims.md", category="Claims", caption="../report/claims.rst"),
    log:
        f"{LOGS}/claims.log",
    conda:
        "../../environment.yml"
    params:
        step=STEP,
        args=lambda wildcards, output: step_args(results_dir=RESULTS, config=config, csv=output.csv,
                                                 table=output.table, gpu_dir=GPU_CHECK_DIR),
    shell:
        "{params.step} claims {params.args} > {log} 2>&1"
