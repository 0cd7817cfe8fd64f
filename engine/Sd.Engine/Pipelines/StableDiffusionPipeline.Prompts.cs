using Microsoft.Extensions.Logging;
using Sd.Engine.Schedulers;
using Sd.Engine.Tensors;
using Sd.Engine.Text;

namespace Sd.Engine.Pipelines;

// The prompts of a request: tokenized into schedules per pass, encoded into the UNet's contexts, logged.
public sealed partial class StableDiffusionPipeline
{
    /// <summary>
    /// The UNet's contexts from the request's prompts (<see cref="TokenizePrompts"/>): every text of their schedules
    /// encoded in one batch, then read call by call as [uncond, cond] when guided (diffusers' batch order) else [cond].
    /// </summary>
    /// <param name="secondPass">A hires fix's second pass: only its prompt editing is logged (the rest was, for the first).</param>
    private PromptContexts EncodePrompts(PromptPlan plan, GenerateRequest request, bool guided, PhaseTimes times, CancellationToken cancellation,
        bool secondPass = false)
    {
        LogPlan(plan, guided, secondPass);
        ClipTextModel encoder = Acquire(_textEncoder, times);
        cancellation.ThrowIfCancellationRequested();
        ClipTextOutput output;
        try
        {
            output = encoder.EncodePrompts(plan.EncoderTexts(), request.ClipSkip);
        }
        catch (ArgumentException e) when (e.ParamName == "prompts")
        {
            throw NamedEncodingError(e, plan, request);
        }
        using (output)
        {
            Tensor bank = Tensor.Allocate(output.Hidden.Shape);
            try
            {
                output.Hidden.Span.CopyTo(bank.Span);
                plan.ApplyScheduleEmphasis(bank);
                return new PromptContexts(bank, output.Lengths.ToArray(), plan.Rows, plan.PartWeights);
            }
            catch (ArgumentException e)
            {
                bank.Dispose();
                throw NamedEncodingError(e, plan, request);
            }
            catch
            {
                bank.Dispose();
                throw;
            }
        }
    }

    /// <summary>
    /// Logs what a pass's prompts hold: dropped tokens, taken-out tags, prompt editing, AND parts; for a hires fix's
    /// second pass, its prompt editing only.
    /// </summary>
    private void LogPlan(PromptPlan plan, bool guided, bool secondPass)
    {
        for (int i = 0; i < plan.Rows.Length; i++)
        {
            (int End, int Text)[] row = plan.Rows[i];
            TokenizedPrompt first = plan.RowPrompts[i];
            if (row.DistinctBy(entry => entry.Text).Count() is int distinct and > 1)
            {
                _logger.LogInformation("The {What} changes during {Pass} (prompt editing): {Count} texts over the steps, the first until call {End}",
                    PromptName(i, guided), secondPass ? "the hires fix's second pass" : "the run", distinct, row[0].End);
            }
            if (secondPass)
            {
                continue;
            }
            if (first.DroppedTokens > 0)
            {
                _logger.LogWarning("The {What} is longer than the text encoder's {Length} tokens: {Dropped} tokens were dropped",
                    PromptName(i, guided), _tokenizer.MaxLength, first.DroppedTokens);
            }
            if (first.RemovedTags.Count > 0 && i <= (guided ? 1 : 0)) // a composed prompt's parts share its tags
            {
                // A caller such as sd generate may have merged the LoRAs these name; the pipeline cannot tell.
                _logger.LogInformation("The prompt's extra-network tags {Tags} were taken out of its text; the pipeline merges only PipelineOptions.Loras",
                    string.Join(" ", first.RemovedTags));
            }
        }
        if (secondPass)
        {
            return;
        }
        if (plan.PartWeights.Length > 1)
        {
            _logger.LogInformation("The prompt is composed of {Count} parts with AND, of guidance weights {Weights}", plan.PartWeights.Length,
                string.Join(", ", plan.PartWeights));
        }
        else if (plan.PartWeights[0] != 1)
        {
            // A1111 reads a trailing ":number" as the guidance weight of the prompt's only part.
            if (guided)
            {
                _logger.LogInformation("The prompt ends in a guidance weight (A1111's AND syntax): its guidance is scaled by {Weight}", plan.PartWeights[0]);
            }
            else
            {
                _logger.LogWarning("The prompt ends in a guidance weight (A1111's AND syntax) of {Weight}, which is not applied: this run has no classifier-free guidance", plan.PartWeights[0]);
            }
        }
    }

    /// <summary>An encoding error with the prompt each encoded text comes from (ClipTextModel numbers them).</summary>
    private static ArgumentException NamedEncodingError(ArgumentException e, PromptPlan plan, GenerateRequest request)
    {
        string names = string.Join(", ", plan.TextNames.Select((name, i) => $"{i} is {(name.Length > 120 ? name[..117] + "..." : name)}").Take(8));
        return new ArgumentException($"{BareMessage(e)} (the encoded texts: {names}{(plan.TextNames.Length > 8 ? ", ..." : "")})", nameof(request), e);
    }

    /// <summary>
    /// The text-encoder chunks all of a request's texts may take together: a prompt that edits itself into many long
    /// texts would otherwise encode and keep each (the bank pads every text to the longest).
    /// </summary>
    private const int MaxScheduledChunks = 256;

    /// <summary>
    /// The request's prompts as text-encoder rows, in the UNet's batch order, each a schedule over a pass's calls
    /// (steps x the scheduler's order, A1111's step multiplier for second-order samplers; a hires fix's second pass
    /// counts on from the first's); an unreadable one is refused by name.
    /// </summary>
    private PromptPlan TokenizePrompts(GenerateRequest request, bool guided, HiresFix? hires)
    {
        int calls = StepsOf(request) * OrderOf(request.Scheduler ?? DefaultScheduler);
        int? firstPassSteps = null;
        if (hires is not null)
        {
            // The second pass's own prompts, over its steps x its scheduler's multiplier, counting on from the first's.
            firstPassSteps = calls;
            request = SecondPass(request, hires);
            calls = HiresStepsOf(request, hires) * OrderOf(request.Scheduler!);
        }
        var schedules = new List<IReadOnlyList<ScheduledTokens>>();
        if (guided)
        {
            // A1111 takes extra-network tags out of the prompt only: a negative prompt's are text.
            schedules.Add(Named(0, () => _tokenizer.TokenizeSchedule(request.NegativePrompt, request.PromptSyntax, calls, takeTagsOut: false, firstPassSteps)));
        }
        IReadOnlyList<ComposablePrompt> parts = Named(guided ? 1 : 0, () => _tokenizer.TokenizeComposable(request.Prompt, request.PromptSyntax, calls, MaxPromptParts, firstPassSteps));
        if (parts.Count > 1)
        {
            CheckComposition(request, guided, parts.Count);
        }
        var weights = new double[parts.Count];
        for (int p = 0; p < parts.Count; p++)
        {
            schedules.Add(parts[p].Schedule);
            weights[p] = parts[p].Weight;
        }
        var texts = new List<TokenizedPrompt>();
        var names = new List<string>();
        var rows = new (int End, int Text)[schedules.Count][];
        int longest = 0;
        PromptChunk empty = _tokenizer.EmptyChunk();
        for (int i = 0; i < rows.Length; i++)
        {
            IReadOnlyList<ScheduledTokens> schedule = schedules[i];
            // A1111 encodes a row's texts as one batch, a shorter text padded with empty chunks that the UNet attends to.
            int chunks = schedule.Max(entry => entry.Tokens.Chunks.Count);
            var indexOf = new Dictionary<string, int>(StringComparer.Ordinal);
            rows[i] = new (int End, int Text)[schedule.Count];
            for (int k = 0; k < schedule.Count; k++)
            {
                if (!indexOf.TryGetValue(schedule[k].Text, out int index))
                {
                    index = texts.Count;
                    indexOf[schedule[k].Text] = index;
                    TokenizedPrompt tokens = schedule[k].Tokens;
                    texts.Add(tokens.Chunks.Count == chunks ? tokens
                        : tokens with { Chunks = [.. tokens.Chunks, .. Enumerable.Repeat(empty, chunks - tokens.Chunks.Count)] });
                    names.Add(RowName(i) + (schedule.Count > 1 ? $" until step {schedule[k].EndAtStep} (\"{schedule[k].Text}\")" : ""));
                    longest = Math.Max(longest, chunks);
                }
                rows[i][k] = (schedule[k].EndAtStep, index);
            }
        }
        if (texts.Count * longest > MaxScheduledChunks)
        {
            throw new ArgumentException($"the prompts' editing and AND parts make {texts.Count} texts of up to {longest} chunks: at most {MaxScheduledChunks} texts x chunks are encoded", nameof(request));
        }
        return new PromptPlan([.. texts], rows, weights, [.. names], [.. schedules.Select(s => s[0].Tokens)]);

        // Row 0 is the negative prompt when guided; the rest are the prompt, or its AND parts.
        string RowName(int row)
        {
            int part = row - (guided ? 1 : 0);
            return part < 0 ? "the negative prompt" : weights.Length > 1 ? $"the prompt's AND part {part + 1}" : "the prompt";
        }

        T Named<T>(int row, Func<T> tokenize)
        {
            try
            {
                return tokenize();
            }
            catch (ArgumentException e) when (e.ParamName == "prompt")
            {
                throw new ArgumentException($"the {PromptName(row, guided)}: {BareMessage(e)}", nameof(request), e);
            }
        }
    }

    /// <summary>Whether every row of a plan reads one text for the whole pass (no prompt editing).</summary>
    private static bool OneTextPerRow(PromptPlan plan) => Array.TrueForAll(plan.Rows, row => row.Length == 1);

    /// <summary>A scheduler's order (A1111's step multiplier): 2 for the two-call samplers.</summary>
    private int OrderOf(string scheduler) => Scheduler.Create(scheduler, _schedulerConfig).Order;

    /// <summary>The most parts a prompt may be composed of with AND: each adds an image to every UNet call's batch.</summary>
    private const int MaxPromptParts = 8;

    /// <summary>
    /// Checks a prompt composed of <paramref name="parts"/> parts with AND can run: each part guides against the
    /// unconditioned prediction, so classifier-free guidance is needed; diffusers' guidance rescale is defined for one
    /// conditioned prediction.
    /// </summary>
    private void CheckComposition(GenerateRequest request, bool guided, int parts)
    {
        if (!guided)
        {
            throw new ArgumentException($"the prompt is composed of {parts} parts with AND, which guide against the unconditioned prediction: that needs classifier-free guidance " +
                (_unetConfig.TimeCondProjDim != null ? "(this LCM-distilled UNet runs without it)" : "(a guidance scale above 1)"), nameof(request));
        }
        if (request.GuidanceRescale > 0)
        {
            throw new ArgumentException($"the guidance rescale ({request.GuidanceRescale}) rescales one conditioned prediction; the prompt is composed of {parts} parts with AND", nameof(request));
        }
    }

    private static string PromptName(int index, bool guided) => guided && index == 0 ? "negative prompt" : "prompt";
}
