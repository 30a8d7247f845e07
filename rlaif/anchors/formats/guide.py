"""The format guide ``rlaif anchors import --help`` prints: every accepted file type and shape, with an example each.

Why in the engine: it describes what the parsers accept, so it lives beside them and changes with them; the CLI shows
it as its epilog and the README's "Anchor files" section repeats it.

    print(FORMAT_GUIDE)
"""

FORMAT_GUIDE = r"""file types: .jsonl/.ndjson (one JSON object per line), .csv (a header row), .parquet,
.json (an array of objects, as Label Studio and Argilla export); .jsonl.gz, .ndjson.gz, .csv.gz and .json.gz
are read compressed. Text is UTF-8 with or without a byte-order mark (Excel's "CSV UTF-8"); UTF-16 with its
byte-order mark is read too.

formats (--format; detected from the first record when not given), with an example each:

preference   TRL preference pairs: texts, or chat message lists (the last turn is the response; without a prompt
             column the shared earlier turns are the prompt); the preference is a label of the oracle dataset:<file>
    {"prompt": "Orders in 2023?", "chosen": "SELECT count(*) FROM orders WHERE year = 2023;", "rejected": "SELECT 1;"}
    {"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello!"}],
     "rejected": [{"role": "assistant", "content": "Go away."}]}

hh           Anthropic HH-RLHF transcripts: the shared dialogue up to the last "Assistant:" is the prompt
    {"chosen": "\n\nHuman: Name a cat?\n\nAssistant: Tom.", "rejected": "\n\nHuman: Name a cat?\n\nAssistant: Cat."}
    {"chosen": "\n\nHuman: 2+2?\n\nAssistant: 4", "rejected": "\n\nHuman: 2+2?\n\nAssistant: 5"}
    {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!", "rejected": "\n\nHuman: Hi\n\nAssistant: What?"}

pairwise     prompt, response_a, response_b and one label column per annotator, label_<annotator> (values A, B, tie,
             skip; also left/right for A/B and equal/draw for tie; empty = not labelled), optional note_<annotator>;
             oracle:/dataset: annotators are machines. This is what `rlaif anchors export` writes.
    prompt,response_a,response_b,slice,label_ana,label_oracle:sql-execution,note_ana
    Orders in 2023?,SELECT count(*) FROM orders WHERE year = 2023;,SELECT 1;,count,A,A,b ignores the year
    Top region?,SELECT region FROM v ORDER BY revenue DESC LIMIT 1;,SELECT 'East';,ranking,tie,B,

pairwise, label columns named otherwise: map each with --label-column COLUMN=ANNOTATOR (or COLUMN: the annotator
             is named after the column). An unmapped label-like column (a name word such as label, preference,
             winner, choice, rating, annotator, vote; or only A/B/tie/skip/left/right values) refuses the import;
             --extra-column COLUMN keeps a column that only looks like a label as item data.
    prompt,response_a,response_b,ana,bo_label,winner
    Orders in 2023?,SELECT count(*) FROM orders WHERE year = 2023;,SELECT 1;,A,B,A
    $ rlaif anchors import votes.csv --label-column ana --label-column bo_label=bo --label-column winner=oracle:sql

labelstudio  Label Studio JSON export of a Pairwise, Choices or two-item Ranker project; one label per completed
             annotation (cancelled ones skipped), named by the annotator's e-mail or user-<id>
    [{"id": 7, "data": {"prompt": "Orders in 2023?", "answer1": "SELECT count(*) ...", "answer2": "SELECT 1;"},
      "annotations": [{"completed_by": {"id": 3, "email": "ana@example.org"}, "was_cancelled": false,
        "result": [{"type": "pairwise", "from_name": "comparison", "value": {"selected": "left"}}]}]}]

argilla      Argilla 2.x records from dataset.records.to_json() (below), or flattened by to_list(flatten=True) / the
             Hub export (JSON, JSONL or Parquet columns prompt, ..., <question>.responses, <question>.responses.users,
             <question>.responses.status); submitted answers count, drafts and discarded ones do not
    [{"id": "r1", "fields": {"prompt": "Orders in 2023?", "response_a": "SELECT ...", "response_b": "SELECT 1;"},
      "responses": {"preference": [{"value": "response_a", "user_id": "9c1f...", "status": "submitted"},
        {"value": ["response_b", "response_a"], "user_id": "07ad...", "status": "submitted"}]}}]

tool exports: the prompt is the first of prompt/question/instruction/input/query/text/context, the responses a pair
such as response_a/response_b, answer1/answer2, text1/text2, left/right (the first one is A, shown left); otherwise
pass --prompt-field KEY and --response-fields LEFT,RIGHT. --question NAME picks the Argilla question (or the Label
Studio control's from_name) holding the preference; --annotator-name USER=NAME renames an annotator.
"""
