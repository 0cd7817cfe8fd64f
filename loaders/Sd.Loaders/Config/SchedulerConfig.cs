namespace Sd.Loaders.Config;

/// <summary>
/// <c>scheduler/scheduler_config.json</c>. Keys whose default depends on the scheduler class (notably
/// <c>timestep_spacing</c>: leading for DDIM/PNDM/LCM, linspace for Euler/LMS/DPM) stay null here and are resolved
/// by the scheduler that is built from this config, as diffusers' <c>from_config</c> does.
/// </summary>
public sealed record SchedulerConfig
{
    public string ClassName { get; init; } = "PNDMScheduler";
    public int NumTrainTimesteps { get; init; } = 1000;
    public double BetaStart { get; init; } = 0.0001;
    public double BetaEnd { get; init; } = 0.02;
    public string BetaSchedule { get; init; } = "linear";
    public float[]? TrainedBetas { get; init; }
    public int StepsOffset { get; init; }
    public bool? SetAlphaToOne { get; init; }
    public bool? SkipPrkSteps { get; init; }

    /// <summary>DDIM and LCM clamp their x0 prediction to +-<see cref="ClipSampleRange"/>; null: the scheduler's default
    /// (diffusers: DDIM true, LCM false).</summary>
    public bool? ClipSample { get; init; }
    public double ClipSampleRange { get; init; } = 1.0;
    public string PredictionType { get; init; } = "epsilon";
    public string? TimestepSpacing { get; init; }
    public bool? UseKarrasSigmas { get; init; }

    /// <summary>LCM's distillation schedule length and its boundary-condition timestep scale.</summary>
    public int OriginalInferenceSteps { get; init; } = 50;
    public double TimestepScaling { get; init; } = 10.0;

    /// <summary>Zero-terminal-SNR betas (DDIM, Euler, Euler ancestral, DPM, LCM; diffusers' PNDM and LMS have no such setting).</summary>
    public bool RescaleBetasZeroSnr { get; init; }

    /// <summary>The ends of the Karras, exponential and beta ramps (not LMS's Karras one), where set (between 1e-10 and 1e9 when loaded).</summary>
    public double? SigmaMin { get; init; }
    public double? SigmaMax { get; init; }

    // Read so that a scheduler diffusers would run differently is refused, not silently run without them (Sd does
    // not implement them): dynamic thresholding (DDIM, DPM, LCM), Euler's continuous timesteps and log-linear sigmas,
    // and DPM's Lu lambdas, clipped lambda (a finite lambda_min_clipped) and sigma_min final level.
    public bool Thresholding { get; init; }
    public string TimestepType { get; init; } = "discrete";
    public string InterpolationType { get; init; } = "linear";
    public bool UseLuLambdas { get; init; }
    public double LambdaMinClipped { get; init; } = double.NegativeInfinity;
    public string FinalSigmasType { get; init; } = "zero";

    // Sigma schedules later diffusers versions offer beside Karras's: exponential and beta (Euler, Heun, KDPM2, LMS,
    // DPM-Solver, UniPC), which Sd runs; flow (DPM-Solver, UniPC), read to be refused where set.
    public bool UseExponentialSigmas { get; init; }
    public bool UseBetaSigmas { get; init; }
    public bool UseFlowSigmas { get; init; }

    public static SchedulerConfig Load(string path) => From(JsonConfig.Load(path));

    public static SchedulerConfig From(JsonConfig json)
    {
        var d = new SchedulerConfig();
        var config = new SchedulerConfig
        {
            ClassName = json.GetString("_class_name", d.ClassName),
            NumTrainTimesteps = json.GetInt("num_train_timesteps", d.NumTrainTimesteps),
            BetaStart = json.GetDouble("beta_start", d.BetaStart),
            BetaEnd = json.GetDouble("beta_end", d.BetaEnd),
            BetaSchedule = json.GetString("beta_schedule", d.BetaSchedule),
            TrainedBetas = json.GetFloatsOrNull("trained_betas"),
            StepsOffset = json.GetInt("steps_offset", 0),
            SetAlphaToOne = json.Has("set_alpha_to_one") ? json.GetBool("set_alpha_to_one", false) : null,
            SkipPrkSteps = json.Has("skip_prk_steps") ? json.GetBool("skip_prk_steps", false) : null,
            ClipSample = json.Has("clip_sample") ? json.GetBool("clip_sample", false) : null,
            ClipSampleRange = json.GetDouble("clip_sample_range", d.ClipSampleRange),
            PredictionType = json.GetString("prediction_type", d.PredictionType),
            TimestepSpacing = json.GetStringOrNull("timestep_spacing"),
            UseKarrasSigmas = json.Has("use_karras_sigmas") ? json.GetBool("use_karras_sigmas", false) : null,
            OriginalInferenceSteps = json.GetInt("original_inference_steps", d.OriginalInferenceSteps),
            TimestepScaling = json.GetDouble("timestep_scaling", d.TimestepScaling),
            Thresholding = json.GetBool("thresholding", false),
            RescaleBetasZeroSnr = json.GetBool("rescale_betas_zero_snr", false),
            TimestepType = json.GetString("timestep_type", d.TimestepType),
            InterpolationType = json.GetString("interpolation_type", d.InterpolationType),
            SigmaMin = json.GetDoubleOrNull("sigma_min"),
            SigmaMax = json.GetDoubleOrNull("sigma_max"),
            UseLuLambdas = json.GetBool("use_lu_lambdas", false),
            LambdaMinClipped = json.GetDoubleOrInfinity("lambda_min_clipped", double.NegativeInfinity),
            FinalSigmasType = json.GetString("final_sigmas_type", d.FinalSigmasType),
            UseExponentialSigmas = json.GetBool("use_exponential_sigmas", false),
            UseBetaSigmas = json.GetBool("use_beta_sigmas", false),
            UseFlowSigmas = json.GetBool("use_flow_sigmas", false),
        };
        if (config.NumTrainTimesteps is <= 0 or > 100_000)
        {
            throw new InvalidFileException(json.Path, $"num_train_timesteps must be in 1..100000, found {config.NumTrainTimesteps}");
        }
        if (config.StepsOffset < 0 || config.StepsOffset >= config.NumTrainTimesteps)
        {
            throw new InvalidFileException(json.Path, $"steps_offset must be in 0..{config.NumTrainTimesteps - 1} (num_train_timesteps - 1), found {config.StepsOffset}");
        }
        if (!(config.ClipSampleRange > 0))
        {
            throw new InvalidFileException(json.Path, $"clip_sample_range must be above 0, found {config.ClipSampleRange}");
        }
        // Only LCM reads it, and checks it against num_train_timesteps: other schedulers run on short schedules.
        if (config.OriginalInferenceSteps < 1)
        {
            throw new InvalidFileException(json.Path, $"original_inference_steps must be at least 1, found {config.OriginalInferenceSteps}");
        }
        if (config.TrainedBetas is { } betas)
        {
            if (betas.Length != config.NumTrainTimesteps)
            {
                throw new InvalidFileException(json.Path, $"trained_betas has {betas.Length} values, num_train_timesteps is {config.NumTrainTimesteps}");
            }
            for (int i = 0; i < betas.Length; i++)
            {
                CheckBeta(json, $"trained_betas[{i}]", betas[i]);
                CheckNoisy(json, $"trained_betas[{i}]", betas[i]);
            }
        }
        else
        {
            // With trained_betas diffusers never reads beta_schedule.
            CheckOneOf(json, "beta_schedule", config.BetaSchedule, BetaSchedules);
            CheckBeta(json, "beta_start", config.BetaStart);
            CheckBeta(json, "beta_end", config.BetaEnd);
            if (config.BetaSchedule != "squaredcos_cap_v2") // the cosine schedule derives its own betas
            {
                // The schedule runs linearly (in beta or its root) between the two, so both ends bound every beta.
                CheckNoisy(json, "beta_start", config.BetaStart);
                CheckNoisy(json, "beta_end", config.BetaEnd);
            }
        }
        CheckSigma(json, "sigma_min", config.SigmaMin);
        CheckSigma(json, "sigma_max", config.SigmaMax);
        try
        {
            // The plain table is what PNDM and LMS run, the rescaled one what the other schedulers run.
            NoiseSchedule.AlphasCumprod(config, rescaleZeroTerminalSnr: false);
            if (config.RescaleBetasZeroSnr)
            {
                NoiseSchedule.AlphasCumprod(config, rescaleZeroTerminalSnr: true);
            }
        }
        catch (ArgumentException e)
        {
            throw new InvalidFileException(json.Path, e.Message);
        }
        CheckOneOf(json, "prediction_type", config.PredictionType, PredictionTypes);
        if (config.TimestepSpacing != null)
        {
            CheckOneOf(json, "timestep_spacing", config.TimestepSpacing, TimestepSpacings);
        }
        return config;
    }

    /// <summary>The beta schedules the schedulers compute (trained_betas aside).</summary>
    private static readonly string[] BetaSchedules = ["linear", "scaled_linear", "squaredcos_cap_v2"];

    private static readonly string[] PredictionTypes = ["epsilon", "v_prediction", "sample"];

    private static readonly string[] TimestepSpacings = ["leading", "linspace", "trailing"];

    private static void CheckOneOf(JsonConfig json, string key, string value, string[] known)
    {
        if (Array.IndexOf(known, value) < 0)
        {
            throw new InvalidFileException(json.Path, $"{key} '{value}' is not one of {string.Join(", ", known)}");
        }
    }

    /// <summary>
    /// Every training step must add noise in float32, the schedulers' precision: a beta below about 3e-8 leaves
    /// 1 - beta at 1, so that step's noise level repeats the one before it (or is 0 at timestep 0). The samplers divide
    /// by sigma and by the gaps between levels, and Karras sigmas map back to timesteps through them.
    /// </summary>
    private static void CheckNoisy(JsonConfig json, string key, double beta)
    {
        if (!(1f - (float)beta < 1f))
        {
            throw new InvalidFileException(json.Path,
                $"{key} {beta} adds no noise in float32 (1 - beta rounds to 1): each training step needs a beta of at least {MinNoisyBeta}, as the samplers divide by the gaps between noise levels");
        }
    }

    /// <summary>A Karras ramp end, where set: a noise level from <see cref="NoiseSchedule.MinSigma"/> to <see cref="NoiseSchedule.MaxSigma"/>.</summary>
    private static void CheckSigma(JsonConfig json, string key, double? sigma)
    {
        if (sigma is { } value && !(value >= NoiseSchedule.MinSigma && value <= NoiseSchedule.MaxSigma))
        {
            throw new InvalidFileException(json.Path, $"{key} must be a noise level in [{NoiseSchedule.SigmaText(NoiseSchedule.MinSigma)}, {NoiseSchedule.SigmaText(NoiseSchedule.MaxSigma)}], found {value}");
        }
    }

    /// <summary>A round beta just above 2^-25 (half the float spacing below 1), below which 1 - beta rounds to 1.</summary>
    private const double MinNoisyBeta = 3e-8;

    /// <summary>A beta is a per-step noise variance: 1 - beta is the step's alpha, so it must lie in [0, 1).</summary>
    private static void CheckBeta(JsonConfig json, string key, double beta)
    {
        if (!(beta >= 0 && beta < 1))
        {
            throw new InvalidFileException(json.Path, $"{key} must be a noise variance in [0, 1), found {beta}");
        }
    }
}
