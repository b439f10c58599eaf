from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from plans.views import accounts, healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", accounts.account, name="account"),
    path("accounts/password/", accounts.password_change, name="password_change"),
    path("accounts/two-factor/", accounts.second_factor, name="second_factor"),
    path("accounts/two-factor/setup/", accounts.second_factor_setup, name="second_factor_setup"),
    path(
        "accounts/two-factor/recovery-codes/",
        accounts.recovery_codes_new,
        name="recovery_codes_new",
    ),
    path("accounts/two-factor/off/", accounts.second_factor_off, name="second_factor_off"),
    path("accounts/feed-tokens/", accounts.feed_token_create, name="feed_token_create"),
    path(
        "accounts/feed-tokens/<int:pk>/revoke/",
        accounts.feed_token_revoke,
        name="feed_token_revoke",
    ),
    path("", include("plans.urls")),
]
