using Sd.Engine.Pipelines;
using Sd.Engine.Tensors;
using Sd.Engine.Text;
using Sd.Loaders;

namespace Sd.Engine.Tests;

/// <summary>
/// AUTOMATIC1111's prompt editing. The parser against the doctests of A1111's prompt_parser (commit 28bd8e1) and
/// cases checked against that file run with lark (its doctest for "a [{b|d{:.5] c" is stale: lark reads the '|' outside
/// an alternation as an error, so the prompt stays one text); the pipeline against a denoising loop written here
/// that switches the text at the call A1111's reconstruct_cond_batch does.
/// </summary>
public sealed class PromptEditingTests : IDisposable
{
    private readonly ModelSource _demo = ModelSource.Demo();

    public void Dispose() => _demo.Dispose();

    public static TheoryData<string, string> Doctests() => new()
    {
        { "test", "10:test" },
        { "a [b:3]", "3:a |10:a b" },
        { "a [b: 3]", "3:a |10:a b" },
        { "a [[[b]]:2]", "2:a |10:a [[b]]" },
        { "[(a:2):3]", "3:|10:(a:2)" },
        { "a [b : c : 1] d", "1:a b  d|10:a  c  d" },
        { "a[b:[c:d:2]:1]e", "1:abe|2:ace|10:ade" },
        { "a [unbalanced", "10:a [unbalanced" },
        { "a [b:.5] c", "5:a  c|10:a b c" },
        { "a [{b|d{:.5] c", "10:a [{b|d{:.5] c" },
        { "((a][:b:c [d:3]", "3:((a][:b:c |10:((a][:b:c d" },
        { "[a|(b:1.1)]", "1:a|2:(b:1.1)|3:a|4:(b:1.1)|5:a|6:(b:1.1)|7:a|8:(b:1.1)|9:a|10:(b:1.1)" },
        { "[fe|]male", "1:female|2:male|3:female|4:male|5:female|6:male|7:female|8:male|9:female|10:male" },
        { "[fe|||]male", "1:female|2:male|3:male|4:male|5:female|6:male|7:male|8:male|9:female|10:male" },
        // Checked against lark: '|' outside an alternation and a trailing backslash leave the prompt as it is; a step
        // without a decimal point counts steps (1e1 is 10), with one a fraction; 0 or less never switches; escapes stay.
        { "a | b [c:2]", "10:a | b [c:2]" },
        { "[a:2] b\\", "10:[a:2] b\\" },
        { "[a:b:1e1][c:d:.25 ]", "2:ac|10:ad" },
        { "[a:b:0][c:d:-1]", "10:bd" },
        { "\\[a:2\\] [x:y:1.0]", "10:\\[a:2\\] x" },
        { "[a:b:7.]", "10:a" },
        { "[a:3e]", "10:[a:3e]" },
        { "(a [b:c:2]:1.2)", "2:(a b:1.2)|10:(a c:1.2)" },
    };

    [Theory]
    [MemberData(nameof(Doctests))]
    public void The_schedule_is_A1111s(string prompt, string expected)
    {
        IReadOnlyList<ScheduledText> schedule = PromptSchedule.Parse(prompt, 10);
        Assert.Equal(expected, string.Join("|", schedule.Select(s => $"{s.EndAtStep}:{s.Text}")));
    }

    /// <summary>A hires fix's second pass (A1111's doctests with base and hires steps 10, then step counts past the first pass).</summary>
    [Theory]
    [InlineData("a [b:.5] c", 10, "10:a b c")]
    [InlineData("a [b:1.5] c", 10, "5:a  c|10:a b c")]
    [InlineData("a [b:c:25] d", 20, "5:a b d|10:a c d")] // 25 - 20 first-pass steps
    [InlineData("a [b:c:10] d", 20, "10:a c d")] // switched in the first pass
    [InlineData("a [b:c:40] d", 20, "10:a b d")] // min(steps, 40 - 20)
    [InlineData("[x|y]", 20, "1:x|2:y|3:x|4:y|5:x|6:y|7:x|8:y|9:x|10:y")] // alternation restarts
    public void A_hires_pass_counts_from_the_first_passs_start(string prompt, int firstPass, string expected)
    {
        IReadOnlyList<ScheduledText> schedule = PromptSchedule.Parse(prompt, 10, firstPass);
        Assert.Equal(expected, string.Join("|", schedule.Select(s => $"{s.EndAtStep}:{s.Text}")));
    }

    [Fact]
    public void Hostile_prompts_are_read_in_linear_time_or_refused_by_name()
    {
        // Unclosed brackets each start a construct attempt; read once per position, 32768 of them take milliseconds.
        string opens = new('[', PromptAttention.MaxLength);
        Assert.Equal(opens, Assert.Single(PromptSchedule.Parse(opens, 20)).Text);
        string mixed = string.Concat(Enumerable.Repeat("[a:(b", PromptAttention.MaxLength / 5));
        Assert.Equal(mixed, Assert.Single(PromptSchedule.Parse(mixed, 20)).Text);
        // Brackets nested past 200 give up the parse (A1111's parser recurses too, and fails from about 250): one text as
        // written. Brackets that never close are text and do not count (lark: 2 texts, and 20).
        string deep = new string('(', 300) + "[a:b:2]" + new string(')', 300);
        Assert.Equal(deep, Assert.Single(PromptSchedule.Parse(deep, 20)).Text);
        string shallow = new string('(', 100) + "[a:b:2]" + new string(')', 100);
        Assert.Equal(2, PromptSchedule.Parse(shallow, 20).Count);
        Assert.Equal(2, PromptSchedule.Parse(new string('(', 300) + "[a:b:2]", 20).Count);
        Assert.Equal(20, PromptSchedule.Parse(new string('[', 300) + "a|b]", 20).Count);
        Assert.Equal("(]" + new string('(', 150) + "a" + new string(')', 150), PromptSchedule.Parse("(]" + new string('(', 150) + "[a:b:2]" + new string(')', 150), 20)[0].Text);
        // An alternation makes a text for every step: the texts may hold 2^24 characters in all.
        Assert.Equal(100_000, PromptSchedule.Parse("[a|b]" + new string('x', 100), 100_000).Count);
        Assert.Contains("at most 16777216 characters in all are read",
            Assert.Throws<ArgumentException>(() => PromptSchedule.Parse("[a|b]" + new string('x', 200), 100_000)).Message);
        // Python's int() of an infinite float raises; A1111 stops there.
        var e = Assert.Throws<ArgumentException>(() => PromptSchedule.Parse("[a:b:1e400]", 20));
        Assert.Equal("prompt", e.ParamName);
        Assert.Contains("the step 1e400 is out of range", e.Message);
        Assert.Throws<ArgumentException>(() => PromptSchedule.Parse(new string('a', PromptAttention.MaxLength + 1), 20));
    }

    [Fact]
    public void The_tokenizer_reads_schedules_in_the_a1111_syntaxes_only_and_after_taking_tags_out()
    {
        ClipTokenizer tokenizer = ClipTokenizer.ByteLevel();
        Assert.Equal("[a:b:2]", Assert.Single(tokenizer.TokenizeSchedule("[a:b:2]", PromptSyntax.Plain, 10)).Text);
        IReadOnlyList<ScheduledTokens> chunked = tokenizer.TokenizeSchedule("[a <lora:x:0.5>:b:2]", PromptSyntax.Chunked, 10);
        Assert.Equal(["a ", "b"], chunked.Select(s => s.Text));
        Assert.Equal("<lora:x:0.5>", Assert.Single(chunked[0].Tokens.RemovedTags).ToString());
        // An alternation's repeated texts are tokenized once.
        IReadOnlyList<ScheduledTokens> alternating = tokenizer.TokenizeSchedule("[cat|dog]", PromptSyntax.Weighted, 6);
        Assert.Equal(6, alternating.Count);
        Assert.Same(alternating[0].Tokens, alternating[2].Tokens);
    }

    [Fact]
    public void A_pipeline_switches_the_text_at_the_call_a1111_does()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        var request = GuidedLoop.Request("[a red boat:a green tree:2]", "blurry", 4, "euler", 5);
        using GenerateResult edited = pipeline.Generate(request);
        // Calls 0, 1 and 2 read the first text (call <= 2), call 3 the second.
        float[] expected = GuidedLoop.Latents(_demo, request, ["blurry", "a red boat", "a green tree"], [_ => 0, call => call <= 2 ? 1 : 2], [1.0]);
        Assert.Equal(expected, edited.Latents.Span.ToArray());

        // A switch at or past the last step never happens; at 0 it happened before the first.
        using GenerateResult boat = pipeline.Generate(request with { Prompt = "a red boat" });
        using GenerateResult never = pipeline.Generate(request with { Prompt = "[a red boat:a green tree:4]" });
        using GenerateResult tree = pipeline.Generate(request with { Prompt = "a green tree" });
        using GenerateResult always = pipeline.Generate(request with { Prompt = "[a red boat:a green tree:0]" });
        Assert.True(boat.Latents.Span.SequenceEqual(never.Latents.Span));
        Assert.True(tree.Latents.Span.SequenceEqual(always.Latents.Span));
        Assert.False(edited.Latents.Span.SequenceEqual(boat.Latents.Span));
        // img2img counts the calls it runs from 0, as A1111 does: strength 0.5 runs calls 0 and 1 of 4 steps, both
        // before a switch at 1 (a count from the schedule's start would be at its calls 2 and 3, past it).
        GenerateRequest painting = request with { InitImage = boat.Image, Strength = 0.5 };
        using GenerateResult paintedEdit = pipeline.Generate(painting with { Prompt = "[a red boat:a green tree:1]" });
        using GenerateResult paintedBoat = pipeline.Generate(painting with { Prompt = "a red boat" });
        Assert.True(paintedEdit.Latents.Span.SequenceEqual(paintedBoat.Latents.Span));
        // Plain is diffusers' syntax: the brackets are text.
        using GenerateResult plain = pipeline.Generate(request with { PromptSyntax = PromptSyntax.Plain });
        Assert.False(plain.Latents.Span.SequenceEqual(edited.Latents.Span));
    }

    [Fact]
    public void A_negative_prompts_tags_are_text_as_in_a1111()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        GenerateRequest request = GuidedLoop.Request("a boat <lora:style:0.5>", "blurry <lora:style:0.5>", 2, "euler", 3);
        using GenerateResult result = pipeline.Generate(request);
        // No emphasis and one chunk: the rows are diffusers' plain ones, the negative prompt's tag included.
        ClipTokenizer tokenizer = ClipTokenizer.ByteLevel();
        TokenizedPrompt[] texts = [.. new[] { "blurry <lora:style:0.5>", "a boat " }.Select(t =>
            new TokenizedPrompt([new PromptChunk(tokenizer.EncodeForPipeline(t, out _), Enumerable.Repeat(1f, 77).ToArray())], 0))];
        Assert.Equal(GuidedLoop.Latents(_demo, request, GuidedLoop.Encode(_demo, texts), [_ => 0, _ => 1], [_ => 77, _ => 77], [1.0]),
            result.Latents.Span.ToArray());
    }

    [Fact]
    public void A_second_order_sampler_schedules_over_two_calls_per_step()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        var request = GuidedLoop.Request("[a red boat:a green tree:.5]", "[blurry|dark]", 3, "heun", 5);
        using GenerateResult edited = pipeline.Generate(request);
        // A1111 schedules over steps x 2 = 6 for a second-order sampler: the prompt switches after call 3 (0.5 x 6),
        // the negative prompt alternates every call (5 calls: 2 x 3 - 1).
        // Call c reads the first text ending at c or later, so calls 0 and 1 both read the alternation's text for step 1.
        float[] expected = GuidedLoop.Latents(_demo, request, ["blurry", "dark", "a red boat", "a green tree"],
            [call => Math.Max(call, 1) % 2 == 1 ? 0 : 1, call => call <= 3 ? 2 : 3], [1.0]);
        Assert.Equal(expected, edited.Latents.Span.ToArray());
    }

    [Fact]
    public void Texts_switching_chunk_counts_batches_and_equal_prompts_run_as_a_loop_written_out()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        string longText = string.Join(", ", Enumerable.Repeat("a tall red boat on the sea", 14)); // several chunks
        var request = GuidedLoop.Request($"[a boat:{longText}:1]", "a boat", 3, "euler", 9);
        IReadOnlyList<GenerateResult> batch = pipeline.GenerateBatch(request, 2);
        try
        {
            // A1111 encodes a prompt's texts as one batch: the prompt's "a boat" gets an empty chunk (bos, eos, padding),
            // which the UNet attends to; the negative prompt's, in its own row, does not.
            ClipTokenizer tokenizer = ClipTokenizer.ByteLevel();
            TokenizedPrompt boat = tokenizer.Tokenize("a boat", PromptSyntax.Weighted);
            long[] emptyIds = new long[77];
            Array.Fill(emptyIds, tokenizer.PadTokenId);
            (emptyIds[0], emptyIds[1]) = (tokenizer.BosTokenId, tokenizer.EosTokenId);
            TokenizedPrompt longTokens = tokenizer.Tokenize(longText, PromptSyntax.Weighted);
            int chunks = longTokens.Chunks.Count;
            Assert.True(chunks > 1);
            var empty = new PromptChunk(emptyIds, Enumerable.Repeat(1f, 77).ToArray());
            TokenizedPrompt padded = boat with { Chunks = [boat.Chunks[0], .. Enumerable.Repeat(empty, chunks - 1)] };
            GuidedLoop.Bank bank = GuidedLoop.Encode(_demo, [boat, padded, longTokens]);
            Func<int, int>[] rows = [_ => 0, call => call <= 1 ? 1 : 2];
            Func<int, int>[] lengths = [_ => 77, _ => 77 * chunks];
            Assert.Equal(GuidedLoop.Latents(_demo, request, bank, rows, lengths, [1.0]), batch[0].Latents.Span.ToArray());
            // The second image starts the schedule again, as its own run with the next seed.
            Assert.Equal(GuidedLoop.Latents(_demo, request with { Seed = 10 }, bank, rows, lengths, [1.0]), batch[1].Latents.Span.ToArray());
        }
        finally
        {
            foreach (GenerateResult result in batch) result.Dispose();
        }
        // Equal prompts without editing: [negative, prompt] encoded as two texts, as before editing was read.
        using GenerateResult same = pipeline.Generate(request with { Prompt = "a boat" });
        Assert.Equal(GuidedLoop.Latents(_demo, request, ["a boat", "a boat"], [_ => 0, _ => 1], [1.0]), same.Latents.Span.ToArray());
    }

    /// <summary>LONG in a case stands for a text of several chunks (the byte-level demo tokenizer: one per character).</summary>
    private static readonly string Long = string.Join(", ", Enumerable.Repeat("a tall red boat on the sea", 6));

    [Theory]
    [InlineData("[(cat:1.3):dog:2]", 4, "(cat:1.3)|dog", "1|1", "0|0|0|1")] // entries at steps 2 and 4
    [InlineData("[(red:1.2)|blue] car", 3, "(red:1.2) car|blue car", "2|1", "0|0|1")] // steps 1, 2, 3: red, blue, red
    [InlineData("[(cat:1.3):LONG:2]", 4, "(cat:1.3)|LONG", "1|1", "0|0|0|1")] // chunk 0 weighted, the rest not
    [InlineData("[cat:LONG (x:1.4):2]", 4, "cat|LONG (x:1.4)", "1|1", "0|0|0|1")] // the empty chunks rescaled with LONG's
    public void Emphasis_means_span_a_prompts_texts_as_a1111_encodes_them_in_one_batch(string prompt, int steps, string texts, string counts, string calls)
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        var request = GuidedLoop.Request(prompt.Replace("LONG", Long), "blurry", steps, "euler", 4);
        using GenerateResult result = pipeline.Generate(request);

        // A1111 encodes the prompt's schedule texts (each once per entry) as one batch: shorter ones padded with its
        // empty chunk (bos, eos, then the padding token, as process_tokens leaves it), and EmphasisOriginal at each
        // chunk position over the whole batch: the mean, each token row times its weight, the new mean, all rescaled.
        ClipTokenizer tokenizer = ClipTokenizer.ByteLevel();
        string[] members = texts.Replace("LONG", Long).Split('|');
        int[] multiplicity = [.. counts.Split('|').Select(int.Parse)];
        TokenizedPrompt[] tokens = [.. members.Select(t => tokenizer.Tokenize(t, PromptSyntax.Weighted))];
        int chunks = tokens.Max(t => t.Chunks.Count);
        long[] emptyIds = new long[77];
        Array.Fill(emptyIds, tokenizer.PadTokenId);
        (emptyIds[0], emptyIds[1]) = (tokenizer.BosTokenId, tokenizer.EosTokenId);
        float[] ones = Enumerable.Repeat(1f, 77).ToArray();
        PromptChunk[][] padded = [.. tokens.Select(t => t.Chunks.Concat(Enumerable.Repeat(new PromptChunk(emptyIds, ones), chunks - t.Chunks.Count)).ToArray())];
        TokenizedPrompt[] plain = [tokenizer.Tokenize("blurry", PromptSyntax.Weighted), .. padded.Select(p => new TokenizedPrompt([.. p.Select(c => new PromptChunk(c.Ids, ones))], 0))];
        GuidedLoop.Bank bank = GuidedLoop.Encode(_demo, plain);
        int chunkFloats = 77 * bank.Width, row = bank.Tokens * bank.Width;
        for (int c = 0; c < chunks; c++)
        {
            if (!padded.Any(p => p[c].Weights.Any(w => w != 1f)))
            {
                continue;
            }
            double Mean()
            {
                double sum = 0;
                for (int m = 0; m < members.Length; m++)
                {
                    for (int i = 0; i < chunkFloats; i++) sum += multiplicity[m] * (double)bank.States[(m + 1) * row + c * chunkFloats + i];
                }
                return sum / (multiplicity.Sum() * (double)chunkFloats);
            }
            float before = (float)Mean();
            for (int m = 0; m < members.Length; m++)
            {
                for (int i = 0; i < chunkFloats; i++) bank.States[(m + 1) * row + c * chunkFloats + i] *= padded[m][c].Weights[i / bank.Width];
            }
            float ratio = before / (float)Mean();
            for (int m = 0; m < members.Length; m++)
            {
                for (int i = 0; i < chunkFloats; i++) bank.States[(m + 1) * row + c * chunkFloats + i] *= ratio;
            }
        }
        int[] textOfCall = [.. calls.Split('|').Select(int.Parse)];
        Assert.Equal(GuidedLoop.Latents(_demo, request, bank, [_ => 0, call => 1 + textOfCall[call]],
            [_ => 77, _ => 77 * chunks], [1.0]), result.Latents.Span.ToArray());
    }

    [Fact]
    public void An_encoding_error_names_the_prompt_of_each_text()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        // A weight float32 holds (3e38, written out: emphasis reads digits and points only) that overflows the states.
        string huge = "3" + new string('0', 38);
        var request = new GenerateRequest { Prompt = $"[(cat:{huge}):dog:1]", NegativePrompt = "blurry", Steps = 2, Width = 64, Height = 64, PromptSyntax = PromptSyntax.Weighted };
        var e = Assert.Throws<ArgumentException>(() => pipeline.Generate(request));
        Assert.Equal("request", e.ParamName);
        Assert.Contains("the emphasis weights leave the hidden states unusable", e.Message);
        Assert.Contains($"(the encoded texts: 0 is the negative prompt, 1 is the prompt until step 1 (\"(cat:{huge})\"), 2 is the prompt until step 2 (\"dog\"))", e.Message);
        // Steps past the training timesteps are refused before any schedule is built over them.
        Assert.Contains("steps must be at most the scheduler's 1000 training timesteps, got 1000000",
            Assert.Throws<ArgumentException>(() => pipeline.Validate(request with { Prompt = "[a|b]", Steps = 1_000_000 })).Message);
    }

    [Fact]
    public void A_prompt_editing_itself_into_too_many_texts_is_refused_before_any_work()
    {
        using var pipeline = StableDiffusionPipeline.LoadDemo();
        // Alternations of 2, 3, 5, 7 and 11 options repeat only after 2310 steps: each of 300 steps reads its own text.
        string prompt = string.Concat(new[] { 2, 3, 5, 7, 11 }.Select(n => "[" + string.Join("|", Enumerable.Range(0, n).Select(i => $"w{n}x{i}")) + "]"));
        var e = Assert.Throws<ArgumentException>(() => pipeline.Validate(new GenerateRequest { Prompt = prompt, Steps = 300, PromptSyntax = PromptSyntax.Weighted }));
        Assert.Contains("the prompt: prompt editing: it reads 300 different texts over 300 steps; at most 256 are encoded", e.Message);
        // Fewer texts of several chunks each: 200 texts of the long text's chunks.
        string options = "[" + string.Join("|", Enumerable.Range(0, 200).Select(i => $"o{i}")) + "]";
        e = Assert.Throws<ArgumentException>(() => pipeline.Validate(new GenerateRequest { Prompt = Long + options, Steps = 200, PromptSyntax = PromptSyntax.Weighted }));
        Assert.Contains("the prompts' editing and AND parts make 201 texts of up to", e.Message); // and the negative prompt's
        Assert.Contains("at most 256 texts x chunks are encoded", e.Message);
        e = Assert.Throws<ArgumentException>(() => pipeline.Validate(new GenerateRequest { NegativePrompt = "[a:b:1e999]", PromptSyntax = PromptSyntax.Weighted }));
        Assert.Contains("the negative prompt: prompt editing: the step 1e999 is out of range", e.Message);
    }

    [Fact]
    public void Contexts_switch_rows_by_a1111s_rule_copying_only_what_changes()
    {
        // Bank rows: text t holds the value t + 1 in each of its 2 x 3 floats.
        Tensor bank = Tensor.Allocate([3, 2, 3]);
        for (int t = 0; t < 3; t++) bank.Span.Slice(t * 6, 6).Fill(t + 1);
        using var contexts = new PromptContexts(bank, [1, 2, 2], [[(10, 0)], [(2, 1), (5, 2), (10, 1)]], [1.0]);
        int[] Row(int call)
        {
            contexts.Select(call);
            return [(int)contexts.Context.Span[0], (int)contexts.Context.Span[6], contexts.Lengths[0], contexts.Lengths[1]];
        }
        Assert.Equal([1, 2, 1, 2], Row(0));
        Assert.Equal([1, 2, 1, 2], Row(2));
        Assert.Equal([1, 3, 1, 2], Row(3));
        Assert.Equal([1, 2, 1, 2], Row(6));
        Assert.Equal([1, 2, 1, 2], Row(11)); // past every end: the first entry, as A1111's default index 0
    }
}
