using System.Text;
using Sd.Engine.Schedulers;
using Sd.Loaders;
using Sd.Loaders.Config;

namespace Sd.Engine.Tests;

/// <summary>
/// Scheduler config keys that change what diffusers 0.27 computes: the ones Sd implements (DDIM's and LCM's x0
/// clipping, LCM's distillation schedule and timestep scale, PNDM's set_alpha_to_one default; zero terminal SNR and
/// Karras ends have their own tests) against float64
/// restatements of diffusers' formulas, and the ones it does not refused where diffusers' class for the scheduler
/// reads them, instead of run as if they were absent.
/// </summary>
public sealed class SchedulerConfigSettingsTests
{
    private const string Sd15 = "\"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, \"beta_end\": 0.012, \"steps_offset\": 1, \"skip_prk_steps\": true";

    private static SchedulerConfig Parse(string settings) =>
        SchedulerConfig.From(JsonConfig.Parse("scheduler_config.json", Encoding.UTF8.GetBytes($"{{{Sd15}{(settings.Length > 0 ? ", " : "")}{settings}}}")));

    [Theory]
    [InlineData("ddim", "\"thresholding\": true", "thresholding true")]
    [InlineData("lcm", "\"thresholding\": true", "thresholding true")]
    [InlineData("dpm++-2m", "\"thresholding\": true", "thresholding true")]
    [InlineData("euler", "\"interpolation_type\": \"log_linear\"", "interpolation_type 'log_linear'")]
    [InlineData("euler", "\"timestep_type\": \"continuous\", \"prediction_type\": \"v_prediction\"", "timestep_type 'continuous'")]
    [InlineData("dpm++-2m", "\"use_lu_lambdas\": true", "use_lu_lambdas true")]
    [InlineData("dpm++-2m", "\"lambda_min_clipped\": -5.1", "lambda_min_clipped -5.1")]
    [InlineData("dpm++-2m", "\"final_sigmas_type\": \"sigma_min\"", "final_sigmas_type 'sigma_min'")]
    [InlineData("unipc", "\"thresholding\": true", "thresholding true")]
    [InlineData("unipc-karras", "\"final_sigmas_type\": \"sigma_min\"", "final_sigmas_type 'sigma_min'")]
    [InlineData("dpm++-2m", "\"use_flow_sigmas\": true", "use_flow_sigmas true")]
    [InlineData("unipc-beta", "\"use_flow_sigmas\": true", "use_flow_sigmas true")]
    public void Settings_diffusers_applies_and_Sd_does_not_implement_are_refused(string name, string settings, string expected)
    {
        SchedulerConfig config = Parse(settings);
        var e = Assert.Throws<NotSupportedException>(() => Scheduler.Create(name, config));
        Assert.Contains($"the scheduler config's {expected} is not supported", e.Message);
    }

    [Theory]
    [InlineData("lms", "\"thresholding\": true, \"rescale_betas_zero_snr\": true")]
    [InlineData("pndm", "\"thresholding\": true, \"rescale_betas_zero_snr\": true, \"timestep_type\": \"continuous\"")]
    [InlineData("euler", "\"timestep_type\": \"continuous\"")] // continuous timesteps are for v-prediction only
    [InlineData("euler", "\"sigma_min\": 0.1, \"sigma_max\": 10")] // the ends only bound a ramp
    [InlineData("euler-a", "\"interpolation_type\": \"log_linear\", \"sigma_min\": 0.1")]
    [InlineData("unipc", "\"use_lu_lambdas\": true, \"lambda_min_clipped\": -5.1")] // DPM-Solver's, which UniPC never reads
    [InlineData("euler-a", "\"use_exponential_sigmas\": true, \"use_beta_sigmas\": true, \"use_flow_sigmas\": true")] // no such settings
    [InlineData("euler", "\"use_flow_sigmas\": true, \"use_exponential_sigmas\": false")] // flow is the multistep solvers'
    [InlineData("ddim", "\"use_beta_sigmas\": true")]
    public void The_same_settings_run_where_diffusers_ignores_them(string name, string settings)
    {
        Scheduler scheduler = Scheduler.Create(name, Parse(settings));
        scheduler.SetTimesteps(4);
        Assert.Equal(name == "pndm" ? 5 : 4, scheduler.StepCount);
    }

    /// <summary>
    /// use_exponential_sigmas and use_beta_sigmas run the ramps the "-exponential" and "-beta" names run; with two such
    /// settings it is refused, as diffusers refuses it. The numbers: diffusers' DPMSolverMultistepScheduler.set_timesteps(5) on SD
    /// 1.5's table (PyTorch 1.13, numpy), whose unrounded timesteps 680.67 and 20.002 are truncated by the int64 cast.
    /// </summary>
    [Fact]
    public void Exponential_and_beta_sigmas_run_from_the_config_or_the_name_as_diffusers_places_them()
    {
        foreach (string name in (string[])["euler", "dpm++-2m", "heun", "dpm2", "lms", "dpm++-sde", "unipc"])
        {
            Scheduler spaced = Scheduler.Create(name, Parse(""));
            spaced.SetTimesteps(9);
            foreach ((string setting, string suffix) in (ReadOnlySpan<(string, string)>)[("use_exponential_sigmas", "-exponential"), ("use_beta_sigmas", "-beta")])
            {
                Scheduler byConfig = Scheduler.Create(name, Parse($"\"{setting}\": true"));
                Scheduler byName = Scheduler.Create(name + suffix, Parse(""));
                byConfig.SetTimesteps(9);
                byName.SetTimesteps(9);
                Assert.Equal(byName.Timesteps.ToArray(), byConfig.Timesteps.ToArray());
                Assert.Equal(byName.Sigmas!.ToArray(), byConfig.Sigmas!.ToArray());
                Assert.NotEqual(spaced.Sigmas!.ToArray(), byName.Sigmas!.ToArray());
            }
        }
        Scheduler dpm = Scheduler.Create("dpm++-2m-exponential", Parse(""));
        dpm.SetTimesteps(5);
        Assert.Equal([999f, 680f, 233f, 20f, 0f], dpm.Timesteps.ToArray());
        Assert.Equal([14.614645f, 3.0889874f, 0.652896f, 0.13799770f, 0.029167533f, 0f], dpm.Sigmas!.ToArray());

        foreach (string both in (string[])["\"use_karras_sigmas\": true, \"use_exponential_sigmas\": true", "\"use_exponential_sigmas\": true, \"use_beta_sigmas\": true",
            "\"use_karras_sigmas\": true, \"use_beta_sigmas\": true"])
        {
            foreach (string name in (string[])["euler", "euler-beta", "dpm++-2m-karras"])
            {
                var e = Assert.Throws<NotSupportedException>(() => Scheduler.Create(name, Parse(both)));
                Assert.Contains("sets more than one of use_karras_sigmas, use_exponential_sigmas and use_beta_sigmas", e.Message);
            }
        }
        // A ramp's name wins over the config's one flag.
        Scheduler named = Scheduler.Create("euler-karras", Parse("\"use_beta_sigmas\": true")), karras = Scheduler.Create("euler-karras", Parse(""));
        named.SetTimesteps(9);
        karras.SetTimesteps(9);
        Assert.Equal(karras.Sigmas!.ToArray(), named.Sigmas!.ToArray());
        Assert.Throws<ArgumentException>(() => Scheduler.Create("ddim-exponential", Parse("")));
        Assert.Throws<ArgumentException>(() => Scheduler.Create("lcm-beta", Parse("")));
        // Euler a takes a ramp by name only: diffusers' Euler ancestral ignores the config's flags.
        Assert.Equal(SigmaRamp.Karras, Scheduler.Create("euler-a-karras", Parse("\"use_beta_sigmas\": true")).Ramp);
        Assert.Equal(SigmaRamp.Spaced, Scheduler.Create("euler-a", Parse("\"use_beta_sigmas\": true")).Ramp);
    }

    [Fact]
    public void A_diffusers_dpm_config_with_python_infinity_loads_and_runs()
    {
        // As diffusers saves DPMSolverMultistepScheduler (community SD 1.5 folders carry it): json.dump writes
        // -Infinity, which is not JSON.
        SchedulerConfig config = Parse("\"_class_name\": \"DPMSolverMultistepScheduler\", \"algorithm_type\": \"dpmsolver++\", " +
            "\"lambda_min_clipped\": -Infinity, \"final_sigmas_type\": \"zero\", \"use_lu_lambdas\": false, \"variance_type\": null, " +
            "\"solver_order\": 2, \"thresholding\": false, \"sample_max_value\": 1.0, \"timestep_spacing\": \"leading\"");
        Assert.Equal(double.NegativeInfinity, config.LambdaMinClipped);
        Scheduler dpm = Scheduler.Create("dpm++-2m", config);
        dpm.SetTimesteps(20);
        Assert.Equal(20, dpm.StepCount);
        // Elsewhere an infinity is a wrong value named by its key; inside a string it is text.
        Assert.Contains("beta_end", Assert.Throws<InvalidFileException>(() => Parse("\"beta_end\": Infinity")).Message);
        Assert.Contains("lambda_min_clipped", Assert.Throws<InvalidFileException>(() => Parse("\"lambda_min_clipped\": NaN")).Message);
        Assert.Equal("-Infinity", Parse("\"_class_name\": \"-Infinity\"").ClassName);
        Assert.Throws<InvalidFileException>(() => Parse("\"x\": Infinityy"));
    }

    [Fact]
    public void An_unknown_interpolation_type_is_refused_as_diffusers_refuses_it()
    {
        var e = Assert.Throws<ArgumentException>(() => Scheduler.Create("euler", Parse("\"interpolation_type\": \"cubic\"")));
        Assert.Contains("interpolation_type 'cubic' is not one of linear, log_linear", e.Message);
    }

    [Theory]
    [InlineData("", 1.0)] // clip_sample defaults to true in DDIMScheduler.__init__
    [InlineData("\"clip_sample\": true, \"clip_sample_range\": 2.5", 2.5)]
    [InlineData("\"clip_sample\": false", double.PositiveInfinity)]
    public void Ddim_clips_its_x0_prediction_as_diffusers_does(string settings, double range)
    {
        SchedulerConfig config = Parse(settings);
        Scheduler ddim = Scheduler.Create("ddim", config);
        ddim.SetTimesteps(10);
        int t = (int)ddim.Timesteps[3], prev = (int)ddim.Timesteps[4];
        float[] sample = [0.9f, -3f, 0.2f, 5f], output = [0.1f, 0.5f, -0.7f, -1.2f];
        var expected = new double[sample.Length];
        double a = ddim.AlphasCumprod[t], aPrev = ddim.AlphasCumprod[prev];
        for (int i = 0; i < sample.Length; i++)
        {
            double x0 = Math.Clamp((sample[i] - Math.Sqrt(1 - a) * output[i]) / Math.Sqrt(a), -range, range);
            expected[i] = Math.Sqrt(aPrev) * x0 + Math.Sqrt(1 - aPrev) * output[i];
        }
        ddim.Step(output, 3, sample, null);
        AssertClose(expected, sample);
        if (range < 2)
        {
            Assert.True(Math.Abs(expected[3] - (Math.Sqrt(aPrev) * (5 + Math.Sqrt(1 - a) * 1.2) / Math.Sqrt(a) + Math.Sqrt(1 - aPrev) * -1.2)) > 1, "the case clips");
        }
    }

    [Fact]
    public void Lcm_reads_its_distillation_steps_timestep_scale_and_clipping()
    {
        SchedulerConfig config = Parse("\"original_inference_steps\": 25, \"timestep_scaling\": 5, \"clip_sample\": true, \"clip_sample_range\": 0.5");
        Scheduler lcm = Scheduler.Create("lcm", config);
        lcm.SetTimesteps(4);
        // lcm_origin_timesteps = (1..25) * 40 - 1, reversed, picked at floor(linspace(0, 25, 4, endpoint=False)).
        Assert.Equal([999f, 759f, 519f, 279f], lcm.Timesteps);
        Assert.Throws<ArgumentOutOfRangeException>(() => lcm.SetTimesteps(26));
        var e = Assert.Throws<ArgumentException>(() => Scheduler.Create("lcm", config with { OriginalInferenceSteps = 1001 }));
        Assert.Contains("needs num_train_timesteps >= 1001", e.Message);

        lcm.SetTimesteps(1);
        float[] sample = [0.9f, -3f, 0.2f], output = [0.1f, 0.5f, -0.7f];
        double a = lcm.AlphasCumprod[999], scaled = 999 * 5.0;
        double cSkip = 0.25 / (scaled * scaled + 0.25), cOut = scaled / Math.Sqrt(scaled * scaled + 0.25);
        var expected = new double[sample.Length];
        for (int i = 0; i < sample.Length; i++)
        {
            double x0 = Math.Clamp((sample[i] - Math.Sqrt(1 - a) * output[i]) / Math.Sqrt(a), -0.5, 0.5);
            expected[i] = cOut * x0 + cSkip * sample[i];
        }
        lcm.Step(output, 0, sample, null);
        AssertClose(expected, sample);
    }

    [Fact]
    public void Pndm_takes_set_alpha_to_one_as_false_when_the_config_omits_it()
    {
        // PNDMScheduler.__init__ defaults set_alpha_to_one to False; only the last step's previous alpha depends on it.
        float[] Last(string settings)
        {
            Scheduler pndm = Scheduler.Create("pndm", Parse(settings));
            pndm.SetTimesteps(3);
            float[] sample = [0.9f, -3f, 0.2f];
            for (int k = 0; k < pndm.StepCount; k++)
            {
                pndm.Step([0.1f * k, 0.5f, -0.7f], k, sample, null);
            }
            return sample;
        }
        Assert.Equal(Last("\"set_alpha_to_one\": false"), Last(""));
        Assert.NotEqual(Last("\"set_alpha_to_one\": true"), Last(""));
    }

    [Theory]
    [InlineData("\"clip_sample_range\": 0", "clip_sample_range must be above 0, found 0")]
    [InlineData("\"original_inference_steps\": 0", "original_inference_steps must be at least 1, found 0")]
    [InlineData("\"timestep_scaling\": \"10\"", "timestep_scaling")]
    [InlineData("\"thresholding\": 1", "thresholding")]
    public void Bad_values_are_refused_naming_the_file(string settings, string expected)
    {
        var e = Assert.Throws<InvalidFileException>(() => Parse(settings));
        Assert.Contains("scheduler_config.json", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_code_built_clip_range_that_is_not_positive_is_refused_when_clipping()
    {
        var config = new SchedulerConfig { ClipSample = true, ClipSampleRange = -1 };
        Assert.Contains("clip_sample_range must be above 0, got -1", Assert.Throws<ArgumentException>(() => Scheduler.Create("lcm", config)).Message);
        Assert.Throws<ArgumentException>(() => Scheduler.Create("ddim", config with { ClipSample = null, ClipSampleRange = double.NaN }));
        Scheduler.Create("ddim", config with { ClipSample = false }).SetTimesteps(2);
    }

    private static void AssertClose(double[] expected, float[] actual)
    {
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(actual[i] - expected[i]) <= 1e-5 * Math.Max(1, Math.Abs(expected[i])), $"[{i}]: {actual[i]} against {expected[i]}");
        }
    }
}
