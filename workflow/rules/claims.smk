import glob

# Verdicts: every claim of the ledger (replication/paper/claims.yaml) judged from this profile's CSVs.


GPU_CHECK_DIR = layout.GPU_CHECK_DIR


rule claims:
    input:
        RESULT_FILES,
        sorted(glob.glob(f"{GPU_CHECK_DIR}/gpu-*.csv")),  # a GPU speed verdict beside each CPU one
        result(layout.COUNTS_VS_PAPER),
        "replication/paper/claims.yaml",
    output:
        csv=result(layout.CLAIMS),
        table=f"{FIGURES}/tables/claims.md",
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


# The report shows HTML in place and offers Markdown only as a download: each table goes in as HTML.
rule claims_html:
    input:
        f"{FIGURES}/tables/claims.md",
    output:
        report(f"{FIGURES}/tables/claims.html", category="Claims", caption="../report/claims.rst"),
    log:
        f"{LOGS}/tables/claims_html.log",
    params:
        python=PYTHON,
    conda:
        "../../environment.yml"
    shell:
        "{params.python} replication/report/html_tables.py {input:q} {output:q} > {log} 2>&1"
