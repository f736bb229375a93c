# Reference values for pv.stats.cuminc / gray / finegray from R's cmprsk (the reference implementation).
#
# Run from the repository root:  Rscript tests/reference/cmprsk_reference.R
# Needs R with the cmprsk and survival packages (Debian: r-base-core r-cran-cmprsk r-cran-survival).
# Writes tests/data/mgus2.csv (input) and tests/reference/cmprsk/*.csv (outputs). The tests read only the
# stored files: R is not needed at test time.
#
# Data: survival::mgus2 (Kyle et al., NEJM 2002; 1384 patients with monoclonal gammopathy of undetermined
# significance followed at the Mayo Clinic). Competing risks as in the survival package's "compete" vignette:
# progression to plasma cell malignancy (PCM, event 1) versus death without progression (event 2), time in
# months to the first of the two, censored (0) otherwise. Times are whole months, so ties are many.
suppressMessages({library(survival); library(cmprsk)})
out <- "tests/reference/cmprsk"
dir.create(out, showWarnings = FALSE, recursive = TRUE)
w <- function(x, name) write.csv(x, file.path(out, name), row.names = FALSE)

d <- mgus2
d$etime <- ifelse(d$pstat == 0, d$futime, d$ptime)
d$event <- ifelse(d$pstat == 0, 2 * d$death, 1)
d$agegrp <- cut(d$age, c(0, 60, 75, 200), labels = c("<60", "60-75", ">75"), right = FALSE)
d$male <- as.integer(d$sex == "M")
d <- d[, c("id", "age", "sex", "male", "agegrp", "hgb", "creat", "mspike", "etime", "event")]
write.csv(d, "tests/data/mgus2.csv", row.names = FALSE, na = "")
d <- read.csv("tests/data/mgus2.csv", stringsAsFactors = FALSE)

# The small hand-made data set (ties between event types, events at time 0, censoring tied with events).
small <- read.csv("tests/data/cmprsk_small.csv", stringsAsFactors = FALSE)

curves <- function(fit, dataset, grouping) {
  fit$Tests <- NULL
  rows <- list()
  for (nm in names(fit)) {
    parts <- strsplit(nm, " ")[[1]]
    cause <- parts[length(parts)]
    group <- paste(parts[-length(parts)], collapse = " ")
    x <- fit[[nm]]
    rows[[nm]] <- data.frame(dataset = dataset, grouping = grouping, group = group, cause = cause,
                             point = seq_along(x$time), time = x$time, est = x$est, var = x$var)
  }
  do.call(rbind, rows)
}
at_times <- function(fit, times, dataset, grouping) {
  tp <- timepoints(fit, times)
  rows <- list()
  for (nm in rownames(tp$est)) {
    parts <- strsplit(nm, " ")[[1]]
    rows[[nm]] <- data.frame(dataset = dataset, grouping = grouping,
                             group = paste(parts[-length(parts)], collapse = " "),
                             cause = parts[length(parts)], time = times,
                             est = as.numeric(tp$est[nm, ]), var = as.numeric(tp$var[nm, ]))
  }
  do.call(rbind, rows)
}
tests <- function(fit, dataset, grouping) {
  t <- fit$Tests
  data.frame(dataset = dataset, grouping = grouping, cause = rownames(t), stat = t[, "stat"],
             pv = t[, "pv"], df = t[, "df"],
             pv_upper_tail = pchisq(t[, "stat"], t[, "df"], lower.tail = FALSE))
}

cv <- list(); tp <- list(); gt <- list()
fit <- cuminc(d$etime, d$event)
cv[[1]] <- curves(fit, "mgus2", "all"); tp[[1]] <- at_times(fit, c(0, 12, 60, 120, 240, 360, 424), "mgus2", "all")
fit <- cuminc(d$etime, d$event, d$sex)
cv[[2]] <- curves(fit, "mgus2", "sex"); tp[[2]] <- at_times(fit, c(12, 60, 120, 240, 360), "mgus2", "sex")
gt[[1]] <- tests(fit, "mgus2", "sex")
fit <- cuminc(d$etime, d$event, d$agegrp)
cv[[3]] <- curves(fit, "mgus2", "agegrp"); tp[[3]] <- at_times(fit, c(12, 60, 120, 240), "mgus2", "agegrp")
gt[[2]] <- tests(fit, "mgus2", "agegrp")
fit <- cuminc(d$etime, d$event, d$agegrp, d$sex)
gt[[3]] <- tests(fit, "mgus2", "agegrp|strata=sex")
fit <- cuminc(d$etime, d$event, d$sex, rho = 1)
gt[[4]] <- tests(fit, "mgus2", "sex|rho=1")
fit <- cuminc(small$time, small$event, small$group)
cv[[4]] <- curves(fit, "small", "group"); tp[[4]] <- at_times(fit, c(0, 1, 2, 2.5, 3, 5, 8), "small", "group")
gt[[5]] <- tests(fit, "small", "group")
fit <- cuminc(small$time, small$event)
cv[[5]] <- curves(fit, "small", "all"); tp[[5]] <- at_times(fit, c(0, 1, 2, 2.5, 3, 5, 8), "small", "all")
# Group B without events of the cause of interest (its cause-1 events recoded as competing events).
nob <- small
nob$event[nob$group == "B" & nob$event == 1] <- 2
fit <- cuminc(nob$time, nob$event, nob$group)
cv[[6]] <- curves(fit, "small_no_b1", "group"); tp[[6]] <- at_times(fit, c(0, 1, 2, 3, 5, 8), "small_no_b1", "group")
gt[[6]] <- tests(fit, "small_no_b1", "group")
w(do.call(rbind, cv), "cuminc_curves.csv")
w(do.call(rbind, tp), "cuminc_timepoints.csv")
w(do.call(rbind, gt), "gray_tests.csv")

# Fine-Gray: complete cases for the covariates (crr drops rows with missing values).
fg <- list()
cc <- d[complete.cases(d[, c("age", "male", "hgb", "creat")]), ]
for (fc in c(1, 2)) {
  m <- crr(cc$etime, cc$event, as.matrix(cc[, c("age", "male", "hgb", "creat")]), failcode = fc, cencode = 0,
           gtol = 1e-10, maxiter = 50)
  s <- summary(m)$coef
  fg[[length(fg) + 1]] <- data.frame(dataset = "mgus2", model = "age+male+hgb+creat", failcode = fc,
                                     covariate = names(m$coef), coef = m$coef, se = sqrt(diag(m$var)),
                                     p = 2 * (1 - pnorm(abs(m$coef) / sqrt(diag(m$var)))),
                                     loglik = m$loglik, loglik_null = m$loglik.null, converged = m$converged,
                                     n = m$n)
}
m <- crr(d$etime, d$event, d$male, failcode = 1, gtol = 1e-10, maxiter = 50)
fg[[length(fg) + 1]] <- data.frame(dataset = "mgus2", model = "male", failcode = 1, covariate = "male",
                                   coef = m$coef, se = sqrt(diag(m$var)),
                                   p = 2 * (1 - pnorm(abs(m$coef) / sqrt(diag(m$var)))),
                                   loglik = m$loglik, loglik_null = m$loglik.null, converged = m$converged,
                                   n = m$n)
m <- crr(small$time, small$event, as.matrix(small[, c("x1", "x2")]), failcode = 1, gtol = 1e-10, maxiter = 50)
fg[[length(fg) + 1]] <- data.frame(dataset = "small", model = "x1+x2", failcode = 1, covariate = names(m$coef),
                                   coef = m$coef, se = sqrt(diag(m$var)),
                                   p = 2 * (1 - pnorm(abs(m$coef) / sqrt(diag(m$var)))),
                                   loglik = m$loglik, loglik_null = m$loglik.null, converged = m$converged,
                                   n = m$n)
w(do.call(rbind, fg), "crr.csv")
writeLines(c(R.version.string, paste("cmprsk", packageVersion("cmprsk")),
             paste("survival", packageVersion("survival"))), file.path(out, "VERSIONS.txt"))
