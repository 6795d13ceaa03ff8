# Tables and figures, drawn from the results CSVs alone.


rule throughput_report:
    input:
        rules.throughput.output,
        predictions=rules.cost_model.output,
    output:
        table=f"{FIGURES}/tables/throughput.md",
        roofline=report(f"{FIGURES}/roofline.png", category="Figures", caption="../report/roofline.rst"),
        roofline_pdf=f"{FIGURES}/roofline.pdf",
    log:
        f"{LOGS}/throughput_report.log",
    conda:
        "../../environment.yml"
    params:
        step=STEP,
        args=lambda wildcards, input, output: step_args(csv=input[0], table=output.table,
                                                        roofline_png=output.roofline,
                                                        predictions_csv=input.predictions[0]),
    shell:
        "{params.step} throughput_report {params.args} > {log} 2>&1"


rule table1:
    input:
        result(layout.summary_csv("sota", "{dataset}")),
    output:
        table=f"{FIGURES}/tables/table1_{{dataset}}.md",
        tex=f"{FIGURES}/tables/table1_{{dataset}}.tex",
    log:
        f"{LOGS}/tables/table1_{{dataset}}.log",
    conda:
        "../../environment.yml"
    params:
        step=STEP,
        args=lambda wildcards, input, output: step_args(
            summary=input[0], paper_table="table1_sota", table=output.table,
            title=f"Table 1 ({wildcards.dataset}): accuracy, params, MACs"),
    shell:
        "{params.step} accuracy_table {params.args} > {log} 2>&1"


rule table2:
    input:
        csv=result(layout.mobilenet_csv("{dataset}")),
        pairs=result(layout.SPEED_PAIRS),
    output:
        table=f"{FIGURES}/tables/table2_{{dataset}}.md",
        tex=f"{FIGURES}/tables/table2_{{dataset}}.tex",
    log:
        f"{LOGS}/tables/table2_{{dataset}}.log",
    conda:
        "../../environment.yml"
    params:
        step=STEP,
        args=lambda wildcards, input, output: step_args(csv=input.csv, pairs=input.pairs, table=output.table),
    shell:
        "{params.step} mobilenet_table {params.args} > {log} 2>&1"


rule table3:
    input:
        result(layout.summary_csv("table3", "{dataset}")),
    output:
        table=f"{FIGURES}/tables/table3_{{dataset}}.md",
        tex=f"{FIGURES}/tables/table3_{{dataset}}.tex",
    log:
        f"{LOGS}/tables/table3_{{dataset}}.log",
    conda:
        "../../environment.yml"
    params:
        step=STEP,
        args=lambda wildcards, input, output: step_args(
            summary=input[0], paper_table="table3_repvgg_vs_resnet", table=output.table,
            title=f"Table 3 ({wildcards.dataset}): ResNet vs RepVGG of the same depth and width"),
    shell:
        "{params.step} accuracy_table {params.args} > {log} 2>&1"


rule table4:
    output:
        f"{FIGURES}/tables/table4_structure.md",
    log:
        f"{LOGS}/tables/table4.log",
    conda:
        "../../environment.yml"
    params:
        step=STEP,
        args=lambda wildcards, output: step_args(table=output[0]),
    shell:
        "{params.step} structure_table {params.args} > {log} 2>&1"


rule depth_figure:
    input:
        summaries=[result(layout.summary_csv("depth_study", dataset)) for dataset in DATASETS],
        seeds=[result(layout.seeds_csv("depth_study", dataset)) for dataset in DATASETS],
    output:
        png=report(f"{FIGURES}/fig5_depth_study.png", category="Figures", caption="../report/fig5.rst"),
        pdf=f"{FIGURES}/fig5_depth_study.pdf",
        csv=result(layout.DEPTH_ALL_DATASETS),
    log:
        f"{LOGS}/figures/fig5.log",
    conda:
        "../../environment.yml"
    params:
        step=STEP,
        args=lambda wildcards, input, output: step_args(summaries=list(input.summaries), seeds=list(input.seeds),
                                                        csv=output.csv, png=output.png),
    shell:
        "{params.step} depth_figure {params.args} > {log} 2>&1"


rule pruning_figure:
    input:
        result(layout.pruning_csv("{dataset}")),
    output:
        png=report(f"{FIGURES}/fig6_pruning_{{dataset}}.png", category="Figures", caption="../report/fig6.rst"),
        pdf=f"{FIGURES}/fig6_pruning_{{dataset}}.pdf",
    log:
        f"{LOGS}/figures/fig6_{{dataset}}.log",
    conda:
        "../../environment.yml"
    params:
        step=STEP,
        args=lambda wildcards, input, output: step_args(csv=input[0], png=output.png),
    shell:
        "{params.step} pruning_figure {params.args} > {log} 2>&1"


rule ablation_figure:
    input:
        rules.ablation.output,
    output:
        png=report(f"{FIGURES}/fig7_ablation.png", category="Figures", caption="../report/fig7.rst"),
        pdf=f"{FIGURES}/fig7_ablation.pdf",
    log:
        f"{LOGS}/figures/fig7.log",
    conda:
        "../../environment.yml"
    params:
        step=STEP,
        args=lambda wildcards, input, output: step_args(csv=input[0], png=output.png),
    shell:
        "{params.step} ablation_figure {params.args} > {log} 2>&1"


rule finetune_figure:
    input:
        base=lambda wildcards: metrics_of(EXP["finetune"]["bases"], wildcards.dataset),
        modes=lambda wildcards: [result(layout.finetune_metrics(wildcards.dataset, base, mode, seed))
                                 for base in EXP["finetune"]["bases"] for mode in EXP["finetune"]["modes"]
                                 for seed in SEEDS],
    output:
        png=report(f"{FIGURES}/fig9_finetune_{{dataset}}.png", category="Figures", caption="../report/fig9.rst"),
        pdf=f"{FIGURES}/fig9_finetune_{{dataset}}.pdf",
    log:
        f"{LOGS}/figures/fig9_{{dataset}}.log",
    conda:
        "../../environment.yml"
    params:
        step=STEP,
        args=lambda wildcards, input, output: step_args(base_metrics=finetune_bases(wildcards.dataset),
                                                        mode_metrics=list(input.modes), png=output.png),
    shell:
        "{params.step} finetune_figure {params.args} > {log} 2>&1"


# Every Markdown table as an HTML page for the report (which shows HTML in place and offers Markdown
# only as a download). The converter is standard-library Python, run as a script: no torch import.
rule table_html:
    input:
        f"{FIGURES}/tables/{{table}}.md",
    output:
        report(f"{FIGURES}/tables/{{table}}.html", category="Tables", caption="../report/tables.rst"),
    wildcard_constraints:
        table="(?!claims$)[a-z0-9_]+",
    log:
        f"{LOGS}/tables/{{table}}_html.log",
    params:
        python=PYTHON,
    conda:
        "../../environment.yml"
    shell:
        "{params.python} replication/report/html_tables.py {input:q} {output:q} > {log} 2>&1"
